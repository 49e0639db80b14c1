"""The mini-LLM: byte-level tokenizer, training (offline, PyTorch), the NumPy
float64 reference and the GGUF export. See models/README.md."""
