"""textexplain: local mode and command-line interface for explaining text classifiers with SageMaker Clarify."""
