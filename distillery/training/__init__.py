"""Training: the teacher and the students through the one Hugging Face ``Trainer`` path.

``trainer`` (``DistillationTrainer``: ``compute_loss`` is the single override point), ``runs`` (run directories,
resume after a kill, curves), ``teacher`` (trained with early stopping, or a checkpoint by reference),
``students`` (one per seed, distilled or hard), ``params`` (``cpu_threads``, ``compute``, ``teacher``,
``teachers``, ``train`` and the student's model).

May import: ``distillery.methods``, ``models``, ``data`` and the shared ground.
"""
