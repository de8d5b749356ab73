"""The redner worker's own folder: what the worker interpreter (Python 3.8 + redner + torch) gets
on its ``PYTHONPATH``, and nothing else.

It holds only core-free modules written to Python 3.8 syntax (a test parses them with
``ast.parse(..., feature_version=(3, 8))``):

- :mod:`nextface_redner_wire`: the message framing both sides speak (versioned header, JSON
  fields, raw arrays);
- :mod:`nextface_redner_scene`: RenderInputs arrays → redner's conventions (pure torch);
- :mod:`nextface_redner_worker`: the server loop and the pyredner back end
  (``python -m nextface_redner_worker``).

The plugin imports the first two as ``nextface_render_redner.worker.<module>``; the worker imports
them by their top-level names.
"""
