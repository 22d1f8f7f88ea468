"""The CDK application: stage config, one construct per concern, thin stacks."""
