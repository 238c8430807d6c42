"""Local runners for the tasks transformers 5 has no pipeline for (extractive question
answering, summarization and translation), written directly on Auto classes. Each returns
the type InferenceClient returns. The vision ones live in ``vision``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from huggingface_hub import (
    QuestionAnsweringOutputElement,
    SummarizationOutput,
    TranslationOutput,
)

from backends.errors import InputValidationError, UnavailableError
from backends.local.tasks import base as r

# -- extractive question answering -------------------------------------------------------


def load_question_answering(location: str, device: str) -> r.Bundle:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    if not tokenizer.is_fast:
        # Answers are cut out of the context by character offsets, which only fast
        # tokenizers report.
        raise UnavailableError(
            "This question-answering model has no fast tokenizer (tokenizer.json), which "
            "local answer extraction needs.",
            hint="Pick a model with a tokenizer.json, or switch the tab to Remote.",
        )
    return r.Bundle(r.auto_model("AutoModelForQuestionAnswering", location, device), tokenizer)


def question_answering(bundle: r.Bundle, inputs, params):
    import torch

    tokenizer, model = bundle.tokenizer, bundle.model
    question = r.text(inputs, "question").strip()
    context = r.text(inputs, "context")
    top_k = params.get("top_k", 1)
    max_answer_len = params.get("max_answer_len", 15)
    max_seq_len = params.get("max_seq_len", min(384, tokenizer.model_max_length))
    doc_stride = params.get("doc_stride", min(128, max_seq_len // 2))
    max_question_len = params.get("max_question_len", 64)
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    if question_tokens > max_question_len:
        raise InputValidationError(
            f"The question is {question_tokens} tokens; `max_question_len` is {max_question_len}.",
            field="question",
            hint="Shorten the question or raise max_question_len.",
        )
    room = max_seq_len - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    if room <= doc_stride:
        raise InputValidationError(
            f"`doc_stride` ({doc_stride}) must be smaller than the context room per window "
            f"({room} tokens: max_seq_len minus the question).",
            field="doc_stride",
            hint="Lower doc_stride or raise max_seq_len.",
        )
    question_first = tokenizer.padding_side == "right"
    pair = (question, context) if question_first else (context, question)
    context_index = 1 if question_first else 0
    encoded = tokenizer(
        *pair,
        truncation="only_second" if question_first else "only_first",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=True,
        return_tensors="pt",
    )
    offsets = encoded.pop("offset_mapping").tolist()
    encoded.pop("overflow_to_sample_mapping", None)
    with torch.inference_mode():
        out = model(**r.to_device(encoded, model))
    starts = out.start_logits.float().cpu().numpy()
    ends = out.end_logits.float().cpu().numpy()

    answers: dict[tuple[int, int], float] = {}
    null_score = 1.0
    for window in range(len(offsets)):
        sequence_ids = encoded.sequence_ids(window)
        in_context = np.array([s == context_index for s in sequence_ids])
        spans, null = _best_spans(starts[window], ends[window], in_context, top_k, max_answer_len)
        null_score = min(null_score, null)
        for first, last, score in spans:
            start, end = offsets[window][first][0], offsets[window][last][1]
            if params.get("align_to_words", True):
                start, end = _word_bounds(encoded, window, first, last, context_index, start, end)
            if score > answers.get((start, end), -1.0):
                answers[(start, end)] = score
    found = [
        {"answer": context[start:end], "start": start, "end": end, "score": score}
        for (start, end), score in answers.items()
    ]
    if params.get("handle_impossible_answer"):
        found.append({"answer": "", "start": 0, "end": 0, "score": null_score})
    found = sorted(found, key=lambda item: item["score"], reverse=True)[:top_k]
    # The Inference API answers one object when there is one answer, else a list.
    return r.hub(QuestionAnsweringOutputElement, found[0] if len(found) == 1 else found)


def _best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    in_context: np.ndarray,
    top_k: int,
    max_answer_len: int,
) -> tuple[list[tuple[int, int, float]], float]:
    """The ``top_k`` (first, last, p(first)·p(last)) spans inside the context, and the
    "no answer" score (the first token, [CLS], as start and end)."""
    allowed = in_context.copy()
    allowed[0] = True  # [CLS]: where models trained with unanswerable questions point
    start = _softmax(np.where(allowed, start_logits, -np.inf))
    end = _softmax(np.where(allowed, end_logits, -np.inf))
    null_score = float(start[0] * end[0])
    scores = np.outer(np.where(in_context, start, 0.0), np.where(in_context, end, 0.0))
    scores = np.tril(np.triu(scores), max_answer_len - 1)  # last >= first, length limit
    flat = scores.ravel()
    best = np.argsort(-flat)[:top_k]
    spans = [
        (int(i // scores.shape[1]), int(i % scores.shape[1]), float(flat[i]))
        for i in best
        if flat[i] > 0
    ]
    return spans, null_score


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - np.max(logits))
    return shifted / shifted.sum()


def _word_bounds(encoded, window, first, last, context_index, start, end) -> tuple[int, int]:
    """Widen a span to whole words (``align_to_words``)."""
    first_word, last_word = (
        encoded.token_to_word(window, first),
        encoded.token_to_word(window, last),
    )
    if first_word is None or last_word is None:
        return start, end
    start = encoded.word_to_chars(window, first_word, sequence_index=context_index).start
    end = encoded.word_to_chars(window, last_word, sequence_index=context_index).end
    return start, end


# -- summarization and translation ------------------------------------------------------


def load_seq2seq(location: str, device: str) -> r.Bundle:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    return r.Bundle(r.auto_model("AutoModelForSeq2SeqLM", location, device), tokenizer)


def summarization(bundle: r.Bundle, inputs, params):
    text = _seq2seq(bundle, "summarization", r.text(inputs), params, {})
    return r.hub(SummarizationOutput, {"summary_text": text})


def translation(bundle: r.Bundle, inputs, params):
    source = r.text(inputs)
    src, tgt = params.get("src_lang"), params.get("tgt_lang")
    tokenizer, config = bundle.tokenizer, bundle.model.config
    generate: dict[str, Any] = {}
    task = "translation"
    specific = getattr(config, "task_specific_params", None) or {}
    if src and tgt and f"translation_{src}_to_{tgt}" in specific:
        task = f"translation_{src}_to_{tgt}"  # T5-style: the pair picks a prompt prefix
    elif src or tgt:
        if not _multilingual(tokenizer):
            pairs = sorted(k.removeprefix("translation_") for k in specific if "_to_" in k)
            raise InputValidationError(
                "This model translates a fixed language pair: it takes no `src_lang`/`tgt_lang`"
                + (f" except these pairs: {', '.join(pairs)}." if pairs else "."),
                field="src_lang" if src else "tgt_lang",
                hint="Clear src_lang and tgt_lang.",
            )
        if not tgt:
            raise InputValidationError(
                "A multilingual model needs `tgt_lang` with `src_lang`.", field="tgt_lang"
            )
        generate["forced_bos_token_id"] = _language_token(tokenizer, tgt, "tgt_lang")
        if src:
            _language_token(tokenizer, src, "src_lang")
            tokenizer.src_lang = src  # mBART/NLLB/M2M100 prefix the source with its code
        if hasattr(tokenizer, "tgt_lang"):
            tokenizer.tgt_lang = tgt
    elif _multilingual(tokenizer):
        raise InputValidationError(
            "This model is multilingual: say which languages with `src_lang` and `tgt_lang`.",
            field="tgt_lang",
            hint="Codes look like the model's language tokens, e.g. en_XX / fr_XX or "
            "eng_Latn / fra_Latn.",
        )
    text = _seq2seq(bundle, task, source, params, generate)
    return r.hub(TranslationOutput, {"translation_text": text})


def _multilingual(tokenizer) -> bool:
    return hasattr(tokenizer, "src_lang") or hasattr(tokenizer, "lang_code_to_id")


def _language_token(tokenizer, code: str, field: str) -> int:
    if hasattr(tokenizer, "get_lang_id"):  # M2M100: "fr" → "__fr__"
        try:
            return tokenizer.get_lang_id(code)
        except KeyError:
            pass
    else:
        token_id = tokenizer.convert_tokens_to_ids(code)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            return token_id
    raise InputValidationError(
        f"`{field}` {code!r} is not a language this model knows.",
        field=field,
        hint="Use the model's own language codes (see its model card).",
    )


def _seq2seq(bundle: r.Bundle, task: str, text: str, params, generate: dict[str, Any]) -> str:
    import torch

    tokenizer, model = bundle.tokenizer, bundle.model
    specific = dict((getattr(model.config, "task_specific_params", None) or {}).get(task, {}))
    prefix = specific.pop("prefix", "") or ""  # T5: "summarize: ", "translate … to …: "
    specific = {k: v for k, v in specific.items() if k != "task"}
    truncation = params.get("truncation", "longest_first")
    if truncation == "only_second":
        raise InputValidationError(
            "`truncation` only_second applies to pairs of texts; this task takes one.",
            field="truncation",
            hint="Pick longest_first or only_first.",
        )
    limit = _input_limit(tokenizer, model)
    if truncation == "do_not_truncate":
        length = len(tokenizer(prefix + text)["input_ids"])
        if length > limit:
            raise InputValidationError(
                f"The text is {length} tokens; this model reads at most {limit}.",
                field="text",
                hint="Shorten it, or let it be truncated (truncation longest_first).",
            )
        encoded = tokenizer(prefix + text, return_tensors="pt")
    else:
        encoded = tokenizer(prefix + text, truncation=True, max_length=limit, return_tensors="pt")
    encoded.pop("token_type_ids", None)  # BERT-style tokenizers add them; seq2seq models don't
    with torch.inference_mode():
        output = model.generate(**r.to_device(encoded, model), **{**specific, **generate})
    decode = r.pick(params, "clean_up_tokenization_spaces")
    return tokenizer.decode(output[0], skip_special_tokens=True, **decode).strip()


def _input_limit(tokenizer, model) -> int:
    limits = [tokenizer.model_max_length]
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, name, None)
        if value:
            limits.append(value)
    limit = min(value for value in limits if value and value > 0)
    return int(min(limit, 100_000))
