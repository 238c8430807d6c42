"""Local runners for the tasks transformers 5 has no pipeline for (extractive question
answering, summarization, translation, image to text, visual question answering, image to
image), written directly on Auto classes. Each returns the type InferenceClient returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from huggingface_hub import (
    ImageToTextOutput,
    QuestionAnsweringOutputElement,
    SummarizationOutput,
    TranslationOutput,
    VisualQuestionAnsweringOutputElement,
)

from backends.errors import InputValidationError, UnavailableError
from backends.local import runners as r


@dataclass
class Bundle:
    """A model with the tokenizer and/or processor that prepares its inputs."""

    model: Any
    tokenizer: Any = None
    processor: Any = None


def _model(auto: str, location: str, device: str) -> Any:
    import torch
    import transformers

    cls = getattr(transformers, auto)
    return cls.from_pretrained(location, dtype=torch.float32).to(device).eval()


# -- extractive question answering -------------------------------------------------------


def load_question_answering(location: str, device: str) -> Bundle:
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
    return Bundle(_model("AutoModelForQuestionAnswering", location, device), tokenizer)


def question_answering(bundle: Bundle, inputs, params):
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


def load_seq2seq(location: str, device: str) -> Bundle:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    return Bundle(_model("AutoModelForSeq2SeqLM", location, device), tokenizer)


def summarization(bundle: Bundle, inputs, params):
    text = _seq2seq(bundle, "summarization", r.text(inputs), params, {})
    return r.hub(SummarizationOutput, {"summary_text": text})


def translation(bundle: Bundle, inputs, params):
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


def _seq2seq(bundle: Bundle, task: str, text: str, params, generate: dict[str, Any]) -> str:
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


# -- image to text (captioning) ---------------------------------------------------------


def load_image_to_text(location: str, device: str) -> Bundle:
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    if AutoConfig.from_pretrained(location).model_type == "vision-encoder-decoder":
        model = _model("VisionEncoderDecoderModel", location, device)
        processor = AutoImageProcessor.from_pretrained(location)
        return Bundle(model, AutoTokenizer.from_pretrained(location), processor)
    # BLIP, GIT, Pix2Struct…: one processor for the image and the decoded text.
    processor = AutoProcessor.from_pretrained(location)
    model = _model("AutoModelForImageTextToText", location, device)
    return Bundle(model, getattr(processor, "tokenizer", None), processor)


def image_to_text(bundle: Bundle, inputs, params):
    import torch

    picture = r.image(inputs)
    processor = bundle.processor
    batch = processor(images=picture, return_tensors="pt")
    with torch.inference_mode():
        output = bundle.model.generate(**r.to_device(batch, bundle.model))
    decoder = bundle.tokenizer or processor
    caption = decoder.batch_decode(output, skip_special_tokens=True)[0].strip()
    return r.hub(ImageToTextOutput, {"generated_text": caption})


# -- visual question answering ----------------------------------------------------------


def load_visual_question_answering(location: str, device: str) -> Bundle:
    from transformers import AutoProcessor

    model = _model("AutoModelForVisualQuestionAnswering", location, device)
    return Bundle(model, processor=AutoProcessor.from_pretrained(location))


def visual_question_answering(bundle: Bundle, inputs, params):
    import torch

    picture, question = r.image(inputs), r.text(inputs, "question")
    model = bundle.model
    batch = bundle.processor(images=picture, text=question, return_tensors="pt", truncation=True)
    batch = r.to_device(batch, model)
    top_k = params.get("top_k", 5)
    with torch.inference_mode():
        if model.can_generate():  # BLIP: the answer is generated text
            if top_k > 1:
                raise InputValidationError(
                    "This model generates one answer; `top_k` above 1 needs a classifier "
                    "model such as ViLT.",
                    field="top_k",
                    hint="Set top_k to 1 or leave it empty.",
                )
            out = model.generate(**batch, output_scores=True, return_dict_in_generate=True)
            steps = model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )
            score = float(torch.exp(steps[0].sum()))
            answer = bundle.processor.batch_decode(out.sequences, skip_special_tokens=True)[0]
            return r.hub(
                VisualQuestionAnsweringOutputElement, [{"answer": answer.strip(), "score": score}]
            )
        # ViLT answers from a fixed vocabulary, trained with independent (sigmoid) scores.
        probs = torch.sigmoid(model(**batch).logits[0].float()).cpu()
    scores, ids = probs.topk(min(top_k, probs.numel()))
    labels = model.config.id2label
    answers = [
        {"answer": labels[int(i)], "score": float(s)} for s, i in zip(scores, ids, strict=True)
    ]
    return r.hub(VisualQuestionAnsweringOutputElement, answers)


# -- image to image ---------------------------------------------------------------------


def load_image_to_image(location: str, device: str) -> Bundle:
    from transformers import AutoImageProcessor

    model = _model("AutoModelForImageToImage", location, device)
    return Bundle(model, processor=AutoImageProcessor.from_pretrained(location))


def image_to_image(bundle: Bundle, inputs, params):
    import torch
    from PIL import Image

    r.refuse(
        {**params, **({"prompt": inputs["prompt"]} if inputs.get("prompt") else {})},
        ["prompt", "negative_prompt", "num_inference_steps", "guidance_scale"],
        "the local image-to-image models (super-resolution) take no prompt and run no "
        "diffusion steps",
    )
    picture = r.image(inputs)
    model = bundle.model
    batch = r.to_device(bundle.processor(picture, return_tensors="pt"), model)
    with torch.inference_mode():
        result = model(**batch).reconstruction[0].float().clamp(0, 1).cpu().numpy()
    array = (np.moveaxis(result, 0, -1) * 255.0).round().astype(np.uint8)
    # The processor pads to the model's window size; cut the padding back off.
    scale = int(getattr(model.config, "upscale", 1) or 1)
    width, height = picture.size
    return Image.fromarray(array[: height * scale, : width * scale])


RUNNERS: dict[str, r.Runner] = {
    "question_answering": r.Runner(
        "question-answering",
        load_question_answering,
        question_answering,
        auto=("AutoModelForQuestionAnswering",),
    ),
    "summarization": r.Runner(
        "seq2seq", load_seq2seq, summarization, auto=("AutoModelForSeq2SeqLM",)
    ),
    "translation": r.Runner("seq2seq", load_seq2seq, translation, auto=("AutoModelForSeq2SeqLM",)),
    "image_to_text": r.Runner(
        "image-to-text",
        load_image_to_text,
        image_to_text,
        auto=("AutoModelForImageTextToText",),
    ),
    "visual_question_answering": r.Runner(
        "visual-question-answering",
        load_visual_question_answering,
        visual_question_answering,
        auto=("AutoModelForVisualQuestionAnswering",),
    ),
    "image_to_image": r.Runner(
        "image-to-image", load_image_to_image, image_to_image, auto=("AutoModelForImageToImage",)
    ),
}
