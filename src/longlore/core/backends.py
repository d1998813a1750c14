"""One text-model interface for every system, after lm-evaluation-harness's ``LM``.

``generate`` maps generation requests to ``n`` completions each; ``loglikelihood`` maps
(context, continuation) pairs to (sum log-prob of the continuation, whether it is the greedy one).
Implementations: :class:`HFTextModel` (a local ``transformers`` model, batched with left padding),
:class:`OpenAITextModel` (any OpenAI-compatible server: vLLM, SGLang, llama.cpp) and
:class:`CachedTextModel` (a persistent SQLite request cache around either, so an interrupted run
resumes without recomputing). :func:`longlore.core.serve.serve_openai` exposes any of them over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from longlore.core.errors import LongloreError


@dataclass(frozen=True)
class GenerationRequest:
    """One generation request.

    ``prompt`` is plain text, or chat messages ``[{"role": ..., "content": ...}]``. With
    ``chat=True`` the model's chat template wraps it (``system`` becomes the first message).
    ``temperature == 0`` is greedy; ``n`` completions are returned; ``stop`` strings end a
    completion and are removed from it. ``repetition_penalty`` is the CTRL-style penalty of
    ``transformers`` (1.0 = off); endpoints receive it as vLLM's ``repetition_penalty`` field.

    Structured generation (both optional): ``json_schema`` (a JSON Schema, as a dict or JSON text)
    constrains the reply to a JSON document of that schema: a local model decodes through
    lm-format-enforcer's token filter, an endpoint gets it as ``response_format`` (chat) or
    ``guided_json`` (vLLM completions). ``response_prefix`` is text the reply already starts with
    (an assistant-turn pre-fill, local models only): it follows the rendered prompt, the completion
    continues it and does not repeat it, and a schema then applies to prefix + completion.
    """

    prompt: str | tuple[dict[str, str], ...] | list[dict[str, str]]
    system: str | None = None
    chat: bool = True
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    n: int = 1
    seed: int = 0
    repetition_penalty: float = 1.0
    json_schema: str | dict | None = None
    response_prefix: str = ""

    def __post_init__(self) -> None:
        if self.json_schema is not None:  # canonical text: hashable, and one cache key per schema
            schema = self.json_schema
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except json.JSONDecodeError as err:
                    raise LongloreError(f"json_schema is not valid JSON ({err}); pass a dict or JSON text") from err
            object.__setattr__(self, "json_schema", json.dumps(schema, sort_keys=True))

    def messages(self) -> list[dict[str, str]]:
        """The chat messages this request stands for."""
        msgs = (
            [dict(m) for m in self.prompt]
            if not isinstance(self.prompt, str)
            else [{"role": "user", "content": self.prompt}]
        )
        return ([{"role": "system", "content": self.system}] if self.system else []) + msgs

    def params(self) -> tuple:
        return (
            self.chat,
            self.max_new_tokens,
            tuple(self.stop),
            self.temperature,
            self.n,
            self.seed,
            self.repetition_penalty,
        )


@dataclass(frozen=True)
class Completion:
    """One completion with why it ended and its token counts (what a server reports as
    ``finish_reason`` and ``usage``): ``"stop"`` for an end-of-sequence token or a stop string,
    ``"length"`` when ``max_new_tokens`` ran out first."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` after ``context`` (raw text; no chat template is applied)."""

    context: str
    continuation: str


@runtime_checkable
class TextModel(Protocol):
    """What every backend offers; systems depend on this and nothing else."""

    model_id: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]: ...

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str: ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


# --- local transformers model ------------------------------------------------------------------


class _StopOnStrings:
    """Per-row stopping criterion: a row is done once its new text holds a stop string."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.stop, self.prompt_len = tokenizer, list(stop), prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)


class HFTextModel:
    """A local ``transformers`` causal LM behind the :class:`TextModel` interface.

    Requests are grouped by generation parameters, sorted by prompt length and run in batches of
    ``batch_size`` with left padding; greedy results do not depend on the batch size.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 8,
        model_id: str | None = None,
        max_length: int | None = None,
    ) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._lock = threading.Lock()  # one forward at a time when served over HTTP
        self._enforcer_data: Any = None  # lm-format-enforcer's view of the vocabulary, built on first use

    @classmethod
    def from_spec(
        cls, spec: str, batch_size: int = 8, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"
    ) -> HFTextModel:
        """Load a causal LM spec (:func:`longlore.core.models.load_causal_lm`) on ``device`` in ``dtype``."""
        from longlore.core.models import load_causal_lm

        model, tokenizer = load_causal_lm(spec, device=device, dtype=dtype)
        return cls(model, tokenizer, batch_size=batch_size, model_id=spec)

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise LongloreError(f"model '{self.model_id}' has no chat template; send requests with chat=False")
        messages = GenerationRequest(prompt=prompt, system=system).messages()
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _render(self, request: GenerationRequest) -> str:
        if request.chat:
            return self.format_chat(request.messages()) + request.response_prefix
        if not isinstance(request.prompt, str):
            raise LongloreError("a request with chat messages needs chat=True")
        return (request.system + "\n\n" if request.system else "") + request.prompt + request.response_prefix

    def _schema_processor(
        self, requests: Sequence[GenerationRequest], n: int, prompt_len: int, max_new_tokens: int
    ) -> Any:
        """A logits processor holding each row to its request's JSON schema (None if no request has one)."""
        if not any(r.json_schema for r in requests):
            return None
        if self._enforcer_data is None:
            self._enforcer_data = _enforcer_tokenizer_data(self.tokenizer)
        rows = [_schema_enforcer(self._enforcer_data, r) for r in requests for _ in range(n)]
        return _JsonSchemaLogitsProcessor(
            rows, self.tokenizer.eos_token_id, prompt_len, max_new_tokens, self._enforcer_data
        )

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return {i for i in ids if i is not None}

    def generation_kwargs(
        self, request: GenerationRequest, prompt_len: int, rows: Sequence[GenerationRequest] = ()
    ) -> dict[str, Any]:
        """``model.generate`` keyword arguments for one batch of ``request``-like rows (``rows``: each
        row's own request, for its JSON schema; default one row of ``request``)."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        kwargs: dict[str, Any] = dict(
            max_new_tokens=request.max_new_tokens,
            num_return_sequences=request.n,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if request.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = request.repetition_penalty
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopOnStrings(self.tokenizer, request.stop, prompt_len)]
            )
        schema = self._schema_processor(rows or [request], request.n, prompt_len, request.max_new_tokens)
        if schema is not None:
            kwargs["logits_processor"] = LogitsProcessorList([schema])
        return kwargs

    @torch.no_grad()
    def _generate_batch(
        self, texts: list[str], request: GenerationRequest, rows: Sequence[GenerationRequest] = ()
    ) -> list[list[Completion]]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not request.chat)
        enc = {k: v.to(self.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        prompt_len = enc["input_ids"].shape[1]
        kwargs = self.generation_kwargs(request, prompt_len, rows or [request] * len(texts))
        with self._lock:
            if request.temperature > 0:
                # seeded under the lock: `longlore serve` runs requests in threads, and another
                # request's sampling between the seed and this generate would change this sample
                torch.manual_seed(request.seed)
            out = self.model.generate(**enc, **kwargs)
        prompt_tokens = enc["attention_mask"].sum(1).tolist()
        eos, pad = self._eos_ids(), self.tokenizer.pad_token_id
        completions = []
        for row_index, row in enumerate(out[:, prompt_len:].tolist()):
            # the row's own tokens: up to and including its first EOS; finished rows are padded
            n = next((j + 1 for j, t in enumerate(row) if t in eos), None)
            ended = n is not None
            if n is None:
                n = len(row)
                while n and row[n - 1] == pad:
                    n -= 1
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            cut = truncate_at_stop(text, request.stop)
            stopped = ended or len(cut) < len(text) or n < request.max_new_tokens
            completions.append(
                Completion(cut, "stop" if stopped else "length", int(prompt_tokens[row_index // request.n]), n)
            )
        return [completions[i * request.n : (i + 1) * request.n] for i in range(len(texts))]

    def generate_detailed(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Like :meth:`generate`, with each completion's ``finish_reason`` and token counts."""
        results: list[list[Completion] | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.params(), []).append(i)
        for indices in groups.values():
            texts = {i: self._render(requests[i]) for i in indices}
            order = sorted(indices, key=lambda i: -len(texts[i]))  # similar lengths share a batch
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self._generate_batch(
                    [texts[i] for i in chunk], requests[chunk[0]], [requests[i] for i in chunk]
                )
                for i, completions in zip(chunk, batch):
                    results[i] = completions
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        return [[c.text for c in row] for row in self.generate_detailed(requests)]

    def _encode_pair(self, request: LoglikelihoodRequest) -> tuple[list[int], list[int]]:
        # lm-eval convention: trailing spaces of the context belong to the continuation.
        context, continuation = request.context, request.continuation
        n_spaces = len(context) - len(context.rstrip(" "))
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        ctx = self.tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
        cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not cont:
            raise LongloreError(f"loglikelihood: empty continuation after context {request.context[-40:]!r}")
        if not ctx:  # score the first token against a start token
            ctx = [
                self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
            ]
        return ctx, cont

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        pairs = [self._encode_pair(r) for r in requests]
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            seqs = [(pairs[i][0] + pairs[i][1])[-(self.max_length + 1) :] for i in chunk]
            width = max(len(s) for s in seqs) - 1
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([s[:-1] + [pad] * (width - len(s) + 1) for s in seqs])  # right padding here
            mask = torch.tensor([[1] * (len(s) - 1) + [0] * (width - len(s) + 1) for s in seqs])
            with self._lock:
                logits = self.model(
                    input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)
                ).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T, V)
            for row, i in enumerate(chunk):
                n_cont, length = len(pairs[i][1]), len(seqs[row]) - 1
                target = torch.tensor(seqs[row][-n_cont:])
                lp = logprobs[row, length - n_cont : length]  # (n_cont, V)
                score = lp.gather(-1, target[:, None]).sum().item()
                results[i] = (score, bool((lp.argmax(-1) == target).all()))
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def prompt_token_logprobs(self, text: str, top: int = 1) -> dict[str, list]:
        """Per-token log-probs of ``text`` in the OpenAI ``logprobs`` shape (for echo requests)."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"][-self.max_length :]
        offsets = [o[0] for o in enc["offset_mapping"]][-len(ids) :]
        with self._lock:
            logits = self.model(input_ids=torch.tensor([ids], device=self.model.device)).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1).cpu()
        tokens = [self.tokenizer.decode([t]) for t in ids]
        token_logprobs: list[float | None] = [None] + [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]
        top_logprobs: list[dict[str, float] | None] = [None]
        for i in range(1, len(ids)):
            values, indices = logprobs[i - 1].topk(top)
            top_logprobs.append({self.tokenizer.decode([j]): v for j, v in zip(indices.tolist(), values.tolist())})
        return {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": offsets,
        }


# --- structured (JSON-schema) generation for local models ----------------------------------------


def _enforcer_tokenizer_data(tokenizer: Any) -> Any:
    """lm-format-enforcer's per-tokenizer data (its transformers adapter does this too; it does not
    import under transformers 5, so the few lines are here): each regular token's text as it reads
    after another token, i.e. with its leading space."""
    try:
        from lmformatenforcer import TokenEnforcerTokenizerData
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise LongloreError("structured generation needs lm-format-enforcer: pip install lm-format-enforcer") from err
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        after_zero = tokenizer.decode([zero, token])[1:]
        if "\ufffd" in after_zero or any(c < " " and c not in "\t\n\r" for c in after_zero):
            continue  # a byte piece of a multi-byte character, or a control character: never valid JSON text alone
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))
    return TokenEnforcerTokenizerData(
        regular, lambda ids: tokenizer.decode(ids).rstrip("\ufffd"), tokenizer.eos_token_id, False, len(tokenizer)
    )


def _schema_enforcer(data: Any, request: GenerationRequest) -> Any:
    """A token enforcer for one row, its parser already past the request's ``response_prefix``
    (None: the row is free)."""
    if not request.json_schema:
        return None
    from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer

    # Compact JSON (one whitespace at a time) in the key order of `required`, and no raw control
    # characters inside strings (JSON forbids them): a small model can neither spend its token
    # budget on blank lines nor skip a key nor write an unparseable string.
    # The alphabet is every character of every usable token (lm-format-enforcer's default, the
    # one-character tokens, lets a multi-character token such as a CJK word into a string and then
    # refuses its characters one by one, which ends the reply mid-string).
    if not hasattr(data, "string_alphabet"):
        data.string_alphabet = "".join(sorted({c for _, text, _ in data.regular_tokens for c in text if c >= " "}))
    config = CharacterLevelParserConfig(
        alphabet=data.string_alphabet,
        max_consecutive_whitespaces=1,
        force_json_field_order=True,
    )
    parser = JsonSchemaParser(json.loads(request.json_schema), config=config)
    for position, char in enumerate(request.response_prefix):
        if char not in parser.get_allowed_characters():
            raise LongloreError(
                f"response_prefix breaks the JSON schema at character {position} ({char!r}): "
                f"{request.response_prefix[:80]!r}"
            )
        parser = parser.add_character(char)
    enforcer = TokenEnforcer(data, parser)
    parser.config = config  # TokenEnforcer installs a default config; keep ours
    return enforcer


def _closing_text(parser: Any, limit: int = 1024) -> str | None:
    """The short ending that completes the JSON document ``parser`` has read so far: close the open
    string, fill the remaining required keys with the shortest values (an empty string, the first
    enum value), add no further items, close every bracket. None if there is none within ``limit``."""
    out = []
    for _ in range(limit):
        if parser.can_end():
            return "".join(out)
        allowed = parser.get_allowed_characters()
        char = next((c for c in '"}],:' if c in allowed), None)
        if char is None:
            char = next((c for c in allowed if not c.isspace()), allowed[:1] or None)
        if char is None:
            return None
        out.append(char)
        parser = parser.add_character(char)
    return None


class _JsonSchemaLogitsProcessor:
    """transformers logits processor: each row may only pick the tokens its enforcer allows.

    Once a row's JSON document is complete (end-of-sequence becomes allowed) it must end at once,
    so a small model cannot pad the reply with whitespace up to ``max_new_tokens``. A row that would
    run out of tokens mid-document is closed in time: when the tokens left are no more than the
    characters of its shortest valid ending (:func:`_closing_text`, plus a small slack), or a new
    array item would no longer fit, it may only write that ending (the allowed token covering most
    of it), so the reply is complete JSON of the schema whatever ``max_new_tokens`` is (given room
    for the shortest document). Rows that have ended are left alone (generate pads them)."""

    SLACK = 2  # tokens kept in hand: a free token may lengthen the ending by a character or two

    def __init__(
        self, enforcers: list[Any], eos_token_id: int, prompt_len: int, max_new_tokens: int, data: Any = None
    ) -> None:
        self.enforcers, self.eos, self.prompt_len = enforcers, eos_token_id, prompt_len
        self.max_new_tokens = max_new_tokens
        self.text = {token: text for token, text, _ in data.regular_tokens} if data is not None else {}

    def _ending(self, enforcer: Any, ids: list[int], remaining: int) -> str | None:
        """The ending to force now, or None while the row may still write freely."""
        parser = enforcer.prefix_states[tuple(ids)].parser
        ending = _closing_text(parser)
        if ending is None:
            return None
        if remaining <= len(ending) + self.SLACK:
            return ending
        if ending.startswith("]") and "," in parser.get_allowed_characters():
            grown = _closing_text(parser.add_character(","))  # the ending once another item is opened
            if grown is not None and remaining <= len(grown) + 1 + self.SLACK:
                return ending
        return None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(scores, dtype=torch.bool)  # True = forbidden
        for row, ids in enumerate(input_ids.tolist()):
            enforcer = self.enforcers[row]
            if enforcer is None or self.eos in ids[self.prompt_len :]:
                continue
            allowed = enforcer.get_allowed_tokens(ids).allowed_tokens
            if self.eos in allowed:
                allowed = [self.eos]
            elif self.text:
                ending = self._ending(enforcer, ids, self.max_new_tokens - (len(ids) - self.prompt_len))
                if ending:
                    fits = [t for t in allowed if self.text.get(t) and ending.startswith(self.text[t])]
                    if fits:
                        allowed = [max(fits, key=lambda t: len(self.text[t]))]
            mask[row] = True
            mask[row, [t for t in allowed if t < scores.shape[1]]] = False
        return scores.masked_fill(mask, float("-inf"))


# --- OpenAI-compatible endpoint --------------------------------------------------------------


class EndpointUnavailable(LongloreError):
    """An endpoint did not answer (connection failures, 408/429/5xx) after its retries; another
    replica may still serve the request (see :class:`longlore.core.endpoints.MultiEndpointTextModel`)."""


class OpenAITextModel:
    """Any OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp server, OpenAI itself).

    Retries connection errors, 429 and 5xx with exponential backoff; at most ``concurrency``
    requests are in flight. The key comes from ``api_key``, ``LONGLORE_API_KEY`` or ``OPENAI_API_KEY``.
    ``loglikelihood`` needs ``/completions`` with ``echo`` + ``logprobs`` (vLLM and llama.cpp offer it).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 4,
        max_retries: int = 4,
        timeout: float = 120.0,
        backoff: float = 0.5,
    ) -> None:
        import httpx

        self.base_url, self.model = base_url.rstrip("/"), model
        self.model_id = f"openai:{model}@{self.base_url}"
        self.concurrency, self.max_retries, self.backoff = concurrency, max_retries, backoff
        key = api_key or os.environ.get("LONGLORE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"})

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
        raise LongloreError(
            f"endpoint {self.base_url} applies its chat template server-side; "
            "log-likelihood scoring over an endpoint takes raw text contexts"
        )

    def _post(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url, last = f"{self.base_url}{route}", ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(url, json=payload)
            except httpx.TransportError as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return response.json()
                detail = response.text[:200].replace("\n", " ")
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise LongloreError(f"endpoint {url} refused the request (HTTP {response.status_code}): {detail}")
                last = f"HTTP {response.status_code}: {detail}"
            if attempt < self.max_retries:
                time.sleep(min(self.backoff * 2**attempt, 30.0))
        raise EndpointUnavailable(
            f"endpoint {url} unreachable after {self.max_retries + 1} tries ({last}); "
            "check that the server is running and the URL / API key"
        )

    def _generate_one(self, request: GenerationRequest) -> list[str]:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "n": request.n,
            "seed": request.seed,
        }
        if request.stop:
            common["stop"] = list(request.stop)
        if request.repetition_penalty != 1.0:  # vLLM's extra sampling field; left out when off
            common["repetition_penalty"] = request.repetition_penalty
        if request.response_prefix:
            raise LongloreError(
                f"endpoint {self.base_url}: a pre-filled reply (response_prefix) needs a local model; "
                "send the request without it (e.g. RecGPT prefill=False)"
            )
        schema = json.loads(request.json_schema) if isinstance(request.json_schema, str) else None
        if request.chat:
            if schema is not None:
                common["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "reply", "schema": schema, "strict": True},
                }
            data = self._post("/chat/completions", {**common, "messages": request.messages()})
            texts = [c["message"]["content"] or "" for c in data["choices"]]
        else:
            if not isinstance(request.prompt, str):
                raise LongloreError("a request with chat messages needs chat=True")
            prompt = (request.system + "\n\n" if request.system else "") + request.prompt
            if schema is not None:
                common["guided_json"] = schema  # vLLM / SGLang guided decoding on /completions
            data = self._post("/completions", {**common, "prompt": prompt})
            texts = [c["text"] for c in data["choices"]]
        return [truncate_at_stop(t, request.stop) for t in texts]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._generate_one, requests))

    def _loglikelihood_one(self, request: LoglikelihoodRequest) -> tuple[float, bool]:
        prompt = request.context + request.continuation
        data = self._post(
            "/completions",
            {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 1, "echo": True},
        )
        logprobs = (data.get("choices") or [{}])[0].get("logprobs") or {}
        if not logprobs.get("token_logprobs") or not logprobs.get("text_offset"):
            raise LongloreError(
                f"endpoint {self.base_url} returned no prompt log-probs; loglikelihood needs "
                "/completions with echo=true and logprobs (vLLM, llama.cpp server); use a generation task"
            )
        total, greedy = 0.0, True
        for tok, lp, offset, top in zip(
            logprobs["tokens"],
            logprobs["token_logprobs"],
            logprobs["text_offset"],
            logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"]),
        ):
            if offset < len(request.context) or offset >= len(prompt) or lp is None:
                continue  # context tokens, and the one generated token after the prompt
            total += lp
            greedy = greedy and bool(top) and max(top, key=top.get) == tok
        return total, greedy

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._loglikelihood_one, requests))


# --- persistent request cache ----------------------------------------------------------------

# Request fields added after caches were first written: left out of the key while at their default,
# so that every earlier cache entry keeps its key.
_KEY_OMIT_DEFAULTS: dict[str, Any] = {"json_schema": None, "response_prefix": "", "repetition_penalty": 1.0}


@dataclass
class CachedTextModel:
    """Wraps a :class:`TextModel` with a SQLite cache keyed by model id + request + parameters.

    Misses are computed in chunks of ``flush_every`` and committed after each chunk, so a run that
    is interrupted resumes from where it stopped. ``hits`` / ``misses`` count requests.
    """

    inner: Any
    path: str | Path
    flush_every: int = 32
    hits: int = 0
    misses: int = 0
    _db: sqlite3.Connection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def format_chat(self, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
        return self.inner.format_chat(prompt, system)

    def _key(self, kind: str, request: Any) -> str:
        fields = {k: v for k, v in asdict(request).items() if k not in _KEY_OMIT_DEFAULTS or v != _KEY_OMIT_DEFAULTS[k]}
        payload = json.dumps(
            {"model": self.inner.model_id, "kind": kind, "request": fields},
            sort_keys=True,
            ensure_ascii=False,
            default=list,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def _run(self, kind: str, requests: Sequence[Any], compute: Any) -> list[Any]:
        keys = [self._key(kind, r) for r in requests]
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._db.execute(f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((k, json.loads(v)) for k, v in rows)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += sum(k in found for k in keys)
        self.misses += len(keys) - sum(k in found for k in keys)
        first = {k: requests[i] for i, k in reversed(list(enumerate(keys)))}
        for start in range(0, len(missing), self.flush_every):
            chunk = missing[start : start + self.flush_every]
            values = compute([first[k] for k in chunk])
            self._db.executemany(
                "INSERT OR REPLACE INTO cache VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False)) for k, v in zip(chunk, values)],
            )
            self._db.commit()
            found.update(zip(chunk, values))
        return [found[k] for k in keys]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        return self._run("generate", requests, self.inner.generate)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
        return [tuple(v) for v in self._run("loglikelihood", requests, self.inner.loglikelihood)]  # type: ignore[misc]

    def close(self) -> None:
        self._db.close()


def parse_endpoint(spec: str) -> tuple[str, str]:
    """``openai:MODEL@URL`` (or ``openai:MODEL`` with ``$OPENAI_BASE_URL``) -> ``(model, base_url)``;
    with several comma-separated URLs, the base URLs come back comma-joined."""
    from longlore.core.models import parse_endpoint_spec

    parsed = parse_endpoint_spec(spec)
    return parsed.name, ",".join(parsed.urls)


def load_text_model(
    spec: str,
    *,
    batch_size: int = 8,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    concurrency: int = 4,
) -> Any:
    """A :class:`TextModel` for a model spec (on ``device`` in ``dtype``) or an ``openai:MODEL@URL``
    endpoint (``concurrency`` requests in flight per endpoint; several comma-separated URLs give a
    :class:`~longlore.core.endpoints.MultiEndpointTextModel`), wrapped in a request cache if
    ``cache`` is given."""
    if spec.startswith("openai:"):
        model_name, urls = parse_endpoint(spec)
        if "," in urls:
            from longlore.core.endpoints import MultiEndpointTextModel

            inner: Any = MultiEndpointTextModel(urls.split(","), model_name, concurrency=concurrency)
        else:
            inner = OpenAITextModel(urls, model_name, concurrency=concurrency)
    else:
        inner = HFTextModel.from_spec(spec, batch_size=batch_size, device=device, dtype=dtype)
    return CachedTextModel(inner, cache) if cache else inner
