"""Synthetic routing-data generator: LLM-backed, resumable, concurrent.

    python -m router_lab.synth                                  # Arch-Router recipe, offline backend
    python -m router_lab.synth synth=agent_tools synth.backend=groq
    python -m router_lab.synth synth.resume_dir=outputs/synth/runs/<dir>

Modules: ``run`` (the orchestrator), ``arch_router`` / ``agent_tools`` (recipes),
``backends`` (offline / groq / openai, retries, request cache), ``offline`` (procedural
replies), ``schemas`` (response models), ``dedup``, ``quality``, ``store``, ``taxonomy``.
See docs/synth.md.
"""
