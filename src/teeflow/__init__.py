"""teeflow: confidential deep learning."""
