"""lf-ray serving: the OpenAI protocol, the transformers engine, Ray Serve deployments and the terminal chat."""
