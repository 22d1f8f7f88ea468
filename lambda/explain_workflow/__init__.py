"""Pure core of the workflow Lambdas (prepare, postprocess): no Lambda or AWS client code here."""
