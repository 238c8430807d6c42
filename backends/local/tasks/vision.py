"""Local runners for the vision tasks transformers 5 has no pipeline for: image to text
(captioning), visual question answering and image to image (super-resolution), written on
Auto classes. Each returns the type InferenceClient returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from huggingface_hub import ImageToTextOutput, VisualQuestionAnsweringOutputElement

from backends.errors import InputValidationError
from backends.local.tasks import base as r

# -- image to text (captioning) ---------------------------------------------------------


def load_image_to_text(location: str, device: str) -> r.Bundle:
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    if AutoConfig.from_pretrained(location).model_type == "vision-encoder-decoder":
        model = r.auto_model("VisionEncoderDecoderModel", location, device)
        processor = AutoImageProcessor.from_pretrained(location)
        return r.Bundle(model, AutoTokenizer.from_pretrained(location), processor)
    # BLIP, GIT, Pix2Struct…: one processor for the image and the decoded text.
    processor = AutoProcessor.from_pretrained(location)
    model = r.auto_model("AutoModelForImageTextToText", location, device)
    return r.Bundle(model, getattr(processor, "tokenizer", None), processor)


def image_to_text(bundle: r.Bundle, inputs, params):
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


def load_visual_question_answering(location: str, device: str) -> r.Bundle:
    from transformers import AutoProcessor

    model = r.auto_model("AutoModelForVisualQuestionAnswering", location, device)
    return r.Bundle(model, processor=AutoProcessor.from_pretrained(location))


def visual_question_answering(bundle: r.Bundle, inputs, params):
    import torch

    picture, question = r.image(inputs), r.text(inputs, "question")
    model = bundle.model
    batch = bundle.processor(images=picture, text=question, return_tensors="pt", truncation=True)
    batch = r.to_device(batch, model)
    with torch.inference_mode():
        if model.can_generate():  # BLIP: the answer is generated text
            if params.get("top_k", 1) > 1:
                raise InputValidationError(
                    "This model generates one answer; `top_k` above 1 needs a classifier "
                    "model such as ViLT.",
                    field="top_k",
                    hint="Set top_k to 1 or leave it empty.",
                )
            return r.hub(VisualQuestionAnsweringOutputElement, [_generated_answer(bundle, batch)])
        # ViLT answers from a fixed vocabulary, trained with independent (sigmoid) scores.
        probs = torch.sigmoid(model(**batch).logits[0].float()).cpu()
    scores, ids = probs.topk(min(params.get("top_k", 5), probs.numel()))
    labels = model.config.id2label
    answers = [
        {"answer": labels[int(i)], "score": float(s)} for s, i in zip(scores, ids, strict=True)
    ]
    return r.hub(VisualQuestionAnsweringOutputElement, answers)


def _generated_answer(bundle: r.Bundle, batch: dict[str, Any]) -> dict[str, Any]:
    """A generated answer scored by its sequence probability; ``score`` stays empty (as the
    Inference API leaves it) when the model's generate cannot report token scores."""
    import torch

    model = bundle.model
    out = model.generate(**batch, output_scores=True, return_dict_in_generate=True)
    sequences = out.sequences if hasattr(out, "sequences") else out
    score = None
    try:
        steps = model.compute_transition_scores(sequences, out.scores, normalize_logits=True)
        score = float(torch.exp(steps[0].sum()))
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass
    answer = bundle.processor.batch_decode(sequences, skip_special_tokens=True)[0]
    return {"answer": answer.strip(), "score": score}


# -- image to image ---------------------------------------------------------------------


def load_image_to_image(location: str, device: str) -> r.Bundle:
    from transformers import AutoImageProcessor

    model = r.auto_model("AutoModelForImageToImage", location, device)
    return r.Bundle(model, processor=AutoImageProcessor.from_pretrained(location))


def image_to_image(bundle: r.Bundle, inputs, params):
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
