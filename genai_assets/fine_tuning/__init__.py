"""Fine-tuning logic without dagster: data, the tiny model, training, evaluation, gate, serving.

One module per job: ``sources`` (reading training files) and ``dataset`` (validation
and split), ``eval_set``, ``formatting``, ``tiny_model``, ``training_job`` and ``sft``
(the training entry point, ``python -m genai_assets.fine_tuning.sft``), ``progress``,
``k8s`` (the training pod), ``weights``, ``evaluation``, ``gate``, ``serving``,
``rollback`` (its command line) and ``paths``. The Dagster wiring is in
``genai_assets.defs.fine_tuning``.
"""
