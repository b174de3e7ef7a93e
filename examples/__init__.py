"""Models written as user code (outside ``pqcompress.models``), used by docs/your-model.md."""
