"""hubtool: find a checkpoint, fine-tune it, document it, publish it on the Hugging Face Hub."""

__version__ = "0.1.0"
