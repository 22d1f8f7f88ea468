"""A Clarify-compatible Kernel SHAP explainer for text: units, coalitions, solver, Clarify-format output."""
