"""P->Q inside the trainers people already use: a PyTorch Lightning callback
(``pqcompress.integrations.lightning``, extra ``lightning``) and a Hugging Face
``transformers`` callback (``pqcompress.integrations.hf``, extra ``hf``). The core never imports
them."""
