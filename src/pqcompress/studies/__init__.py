"""End-to-end study pipelines built from the library's parts (floor 6: they train, export and
evaluate): the distillation study (:mod:`.distillation`)."""
