"""Shared building blocks used by two or more longlore systems.

Modules: ``errors`` (user-facing errors), ``io`` (validated JSON/JSONL, atomic writes), ``models``
(offline model loading: real assets and tiny seeded models), ``backends`` (one text-model
interface over local transformers models and OpenAI-compatible endpoints, with a persistent
request cache), ``metrics`` (EM / F1 / ROUGE / bootstrap), ``text`` (natural filler text and a
synthetic e-commerce world), ``assets`` (the real offline assets), ``progress`` (console output).
"""
