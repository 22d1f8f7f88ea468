"""Bring-your-own-container inference server for fastText / BlazingText models (SageMaker hosting contract)."""
