"""Build, evaluate and register the credit approval model."""
