"""The task renderers: huggingface_hub results → widget values (pure functions)."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import (
    AudioToAudioOutputElement,
    AutomaticSpeechRecognitionOutput,
    AutomaticSpeechRecognitionOutputChunk,
    FillMaskOutputElement,
    ImageClassificationOutputElement,
    ImageSegmentationOutputElement,
    ObjectDetectionOutputElement,
    QuestionAnsweringOutputElement,
    SummarizationOutput,
    TableQuestionAnsweringOutputElement,
    TokenClassificationOutputElement,
    VisualQuestionAnsweringOutputElement,
)
from PIL import Image, ImageDraw

from backends.media import encode_png, encode_wav
from components import render_media, renderers
from components.render_media import PALETTE, line_width
from components.renderers import HIGHLIGHT_CSS, Labelled

GREY = (128, 128, 128)


def detection(label: str, score: float, xmin: int, ymin: int, xmax: int, ymax: int):
    return ObjectDetectionOutputElement.parse_obj_as_instance(
        {
            "box": {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax},
            "label": label,
            "score": score,
        }
    )


def grey_png(width: int = 300, height: int = 200) -> bytes:
    return encode_png(Image.new("RGB", (width, height), GREY))


def mask_png(size: tuple[int, int], box: tuple[int, int, int, int]) -> str:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return base64.b64encode(encode_png(mask)).decode()


# -- boxes ------------------------------------------------------------------------------


def test_detections_draw_one_box_per_object_at_its_coordinates():
    result = [detection("cat", 0.98, 40, 60, 140, 180), detection("dog", 0.75, 180, 80, 280, 190)]
    drawn, table = render_media.boxes(result, {"image": grey_png()})
    assert drawn.size == (300, 200)
    cat, dog = PALETTE[0], PALETTE[1]
    assert cat != dog  # one colour per label
    for colour, (xmin, ymin, xmax, ymax) in ((cat, (40, 60, 140, 180)), (dog, (180, 80, 280, 190))):
        middle_y = (ymin + ymax) // 2
        # The outline is on the box's edges (drawn inwards)...
        assert drawn.getpixel((xmin, middle_y)) == colour
        assert drawn.getpixel((xmax, middle_y)) == colour
        assert drawn.getpixel((xmin + line_width(drawn) - 1, middle_y)) == colour
        assert drawn.getpixel(((xmin + xmax) // 2, ymax)) == colour
        # ...not inside it, and not outside it.
        assert drawn.getpixel(((xmin + xmax) // 2, middle_y)) == GREY
        assert drawn.getpixel((xmin + line_width(drawn) + 2, middle_y)) == GREY
        assert drawn.getpixel((xmin - 2, middle_y)) == GREY
        # The "label score" tag sits just above the box, in the box's colour.
        assert drawn.getpixel((xmin + 1, ymin - 2)) == colour
    assert table["label"].tolist() == ["cat", "dog"]
    assert table[["xmin", "ymin", "xmax", "ymax"]].values.tolist() == [
        [40, 60, 140, 180],
        [180, 80, 280, 190],
    ]


def test_same_label_same_colour_and_a_box_at_the_top_gets_its_tag_inside():
    result = [detection("cat", 0.9, 10, 0, 100, 90), detection("cat", 0.8, 150, 50, 250, 150)]
    drawn, _ = render_media.boxes(result, {"image": grey_png()})
    assert drawn.getpixel((10, 45)) == PALETTE[0]
    assert drawn.getpixel((150, 100)) == PALETTE[0]
    # No room above y=0: the tag is drawn inside the box, under its top edge.
    assert drawn.getpixel((12, line_width(drawn) + 3)) == PALETTE[0]


def test_the_input_image_is_not_modified_and_out_of_bounds_boxes_are_clipped():
    source = Image.new("RGB", (100, 80), GREY)
    drawn = render_media.draw_boxes(source, [detection("x", 0.5, -20, 10, 500, 70)])
    assert source.getpixel((0, 40)) == GREY
    assert drawn.getpixel((0, 40)) == PALETTE[0]
    assert drawn.getpixel((99, 40)) == PALETTE[0]


# -- masks ------------------------------------------------------------------------------


def test_masks_are_decoded_where_set_and_resized_to_the_image():
    # The model worked at half resolution: the mask is 150×100 for a 300×200 image.
    house = ImageSegmentationOutputElement(
        label="house", mask=mask_png((150, 100), (10, 20, 59, 69)), score=0.91
    )
    sky = ImageSegmentationOutputElement(
        label="sky", mask=mask_png((300, 200), (0, 0, 299, 29)), score=None
    )
    ((image, regions),) = render_media.masks([house, sky], {"image": grey_png()})
    assert image.size == (300, 200)
    (house_mask, house_label), (sky_mask, sky_label) = regions
    assert house_label == "house (0.91)" and sky_label == "sky"
    assert house_mask.shape == (200, 300) and sky_mask.shape == (200, 300)
    assert house_mask[40:140, 20:120].min() == 1.0  # set where the mask is set
    assert house_mask[150:, :].max() == 0.0 and house_mask[:, 130:].max() == 0.0
    assert sky_mask[:30].min() == 1.0 and sky_mask[30:].max() == 0.0


def test_a_mask_sent_as_a_data_url_decodes_too():
    data_url = "data:image/png;base64," + mask_png((4, 4), (0, 0, 1, 1))
    mask = render_media.decode_mask(data_url, (4, 4))
    assert mask.tolist()[0] == [1.0, 1.0, 0.0, 0.0]


# -- labels and text --------------------------------------------------------------------


def test_labels_become_a_label_to_score_mapping():
    result = [
        ImageClassificationOutputElement(label="tabby", score=0.7),
        ImageClassificationOutputElement(label="tiger cat", score=0.2),
    ]
    assert renderers.labels(result, {}) == ({"tabby": 0.7, "tiger cat": 0.2},)


def test_fill_mask_uses_the_filled_in_word_as_label():
    result = [
        FillMaskOutputElement(
            score=0.9, sequence="paris is the capital", token=1, token_str="capital"
        ),
        FillMaskOutputElement(
            score=0.05, sequence="paris is the heart", token=2, token_str=" heart"
        ),
    ]
    assert renderers.labels(result, {}) == ({"capital": 0.9, "heart": 0.05},)


def test_speech_recognition_shows_the_transcript_and_a_timestamps_table():
    result = AutomaticSpeechRecognitionOutput(
        text=" hello world",
        chunks=[
            AutomaticSpeechRecognitionOutputChunk(text="hello", timestamp=[0.0, 0.5]),
            AutomaticSpeechRecognitionOutputChunk(text="world", timestamp=[0.5, 1.2]),
        ],
    )
    transcript, table = renderers.text(result, {})
    assert transcript == "hello world"
    assert table.values.tolist() == [[0.0, 0.5, "hello"], [0.5, 1.2, "world"]]


def test_text_without_chunks_hides_the_timestamps():
    assert renderers.text(SummarizationOutput(summary_text="Short."), {}) == ("Short.", None)
    transcript = AutomaticSpeechRecognitionOutput(text="hi", chunks=None)
    assert renderers.text(transcript, {}) == ("hi", None)


def test_qa_answers_best_first_with_the_best_highlighted_in_the_context():
    context = "My name is Clara and I live in Berkeley."
    start = context.index("Berkeley")
    result = [
        QuestionAnsweringOutputElement(answer="Clara", score=0.1, start=11, end=16),
        QuestionAnsweringOutputElement(answer="Berkeley", score=0.8, start=start, end=start + 8),
    ]
    table, highlighted = renderers.answers(result, {"question": "Where?", "context": context})
    assert table.columns.tolist() == ["answer", "score", "start", "end"]
    assert table["answer"].tolist() == ["Berkeley", "Clara"]
    assert highlighted == [
        ("My name is Clara and I live in ", None),
        ("Berkeley", "answer"),
        (".", None),
    ]


def test_visual_qa_answers_have_no_span_and_no_context():
    result = [VisualQuestionAnsweringOutputElement(answer="blue", score=0.6)]
    table, highlighted = renderers.answers(result, {"image": b"", "question": "Color?"})
    assert table.columns.tolist() == ["answer", "score"]
    assert table.values.tolist() == [["blue", 0.6]]
    assert highlighted is None


def test_entities_are_highlighted_at_their_spans():
    text = "Sarah lives in New York."
    result = [
        TokenClassificationOutputElement(
            start=15, end=23, word="New York", score=0.99, entity_group="LOC"
        ),
        TokenClassificationOutputElement(
            start=0, end=5, word="Sarah", score=0.98, entity_group="PER"
        ),
        # An overlapping token (aggregation "none") is listed but not highlighted twice.
        TokenClassificationOutputElement(start=15, end=18, word="New", score=0.9, entity="B-LOC"),
    ]
    segments, table = renderers.entities(result, {"text": text})
    assert segments == [("Sarah", "PER"), (" lives in ", None), ("New York", "LOC"), (".", None)]
    assert "".join(segment for segment, _ in segments) == text
    assert table["entity"].tolist() == ["PER", "LOC", "B-LOC"]


# -- tables -----------------------------------------------------------------------------

TABLE = {"Repository": ["Transformers", "Datasets"], "Stars": ["36542", "4512"]}


def test_table_answer_highlights_the_answer_cells():
    result = TableQuestionAnsweringOutputElement(
        answer="SUM > 36542, 4512",
        cells=["36542", "4512"],
        coordinates=[[0, 1], [1, 1]],
        aggregator="SUM",
    )
    answer, styler = renderers.table_answer(result, {"table": TABLE, "query": "Total?"})
    assert answer == "SUM > 36542, 4512"
    styles = renderers.cell_styles(styler.data, result.coordinates)
    assert styles.values.tolist() == [["", HIGHLIGHT_CSS], ["", HIGHLIGHT_CSS]]
    html = styler.to_html()
    assert (
        "row0_col1" in html and "row1_col1" in html and "row0_col0" not in html.split("</style>")[0]
    )
    assert styler.data.values.tolist() == [["Transformers", "36542"], ["Datasets", "4512"]]


def test_table_answer_names_the_aggregator_and_cells_when_the_answer_does_not():
    result = TableQuestionAnsweringOutputElement(
        answer="41054", cells=["36542", "4512"], coordinates=[[0, 1], [1, 1]], aggregator="SUM"
    )
    answer, _ = renderers.table_answer(result, {"table": TABLE})
    assert answer == "SUM > 41054  (cells: 36542, 4512)"


def test_tabular_predictions_are_joined_to_the_input_rows():
    (frame,) = renderers.table_predictions(["5", "6"], {"table": TABLE})
    assert frame.columns.tolist() == ["prediction", "Repository", "Stars"]
    assert frame.values.tolist() == [["5", "Transformers", "36542"], ["6", "Datasets", "4512"]]
    (short,) = renderers.table_predictions([1.5], {"table": TABLE})
    assert short["prediction"].tolist()[0] == 1.5 and pd.isna(short["prediction"].tolist()[1])


def test_similarity_is_sorted_best_first_with_each_sentence_keeping_its_score():
    inputs = {"sentence": "a", "other_sentences": ["dog", "very happy person", "sunny day"]}
    (frame,) = renderers.scores([0.6, 0.95, 0.1], inputs)
    assert frame.values.tolist() == [["very happy person", 0.95], ["dog", 0.6], ["sunny day", 0.1]]


def test_embedding_shows_shape_first_values_and_a_plot_frame():
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    summary, frame = renderers.embedding(vector[None, :], {})
    assert "shape (1, 384)" in summary and "384 dimensions" in summary
    assert "-1.0000" in summary  # the first value
    assert frame.shape == (384, 2) and frame["value"].iloc[-1] == pytest.approx(1.0)
    tokens, _ = renderers.embedding(np.zeros((5, 8)), {})
    assert "shape (5, 8)" in tokens and "row 1 of 5" in tokens


# -- audio ------------------------------------------------------------------------------


def test_speech_bytes_become_a_rate_and_samples_for_the_player():
    wav = encode_wav(np.zeros(1600, dtype=np.float32), 16_000)
    ((rate, samples),) = render_media.audio(wav, {})
    assert rate == 16_000 and samples.shape == (1600,)


def test_undecodable_audio_is_written_to_a_file_with_its_format():
    mp4ish = b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64
    (path,) = render_media.audio(mp4ish, {})
    try:
        assert path.endswith(".m4a")
        with open(path, "rb") as file:
            assert file.read() == mp4ish
    finally:
        os.unlink(path)


def test_audio_to_audio_gives_one_labelled_player_per_source_and_hides_the_rest():
    wav = encode_wav(np.zeros(800, dtype=np.float32), 8_000)
    result = [
        AudioToAudioOutputElement(blob=wav, content_type="audio/wav", label="speech"),
        AudioToAudioOutputElement(blob=wav, content_type="audio/wav", label="noise"),
    ]
    players = render_media.audio_list(result, {})
    assert len(players) == render_media.MAX_AUDIO_OUTPUTS
    assert [p.label for p in players[:2]] == ["speech", "noise"]
    assert isinstance(players[0], Labelled) and players[0].value[0] == 8_000
    assert players[2:] == (None,) * (render_media.MAX_AUDIO_OUTPUTS - 2)


# -- raw JSON ---------------------------------------------------------------------------


def test_raw_result_is_json_with_big_things_summarized():
    raw = renderers.to_jsonable(
        [
            ImageSegmentationOutputElement(label="sky", mask="A" * 5000, score=None),
            detection("cat", 0.5, 1, 2, 3, 4),
        ]
    )
    assert raw[0]["label"] == "sky" and raw[0]["mask"].endswith("(5000 characters)")
    assert raw[1]["box"] == {"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}
    assert renderers.to_jsonable(encode_wav(np.zeros(10), 8000))["format"] == "wav"
    assert renderers.to_jsonable(Image.new("RGB", (4, 3))) == {"image": "4×3", "mode": "RGB"}
    assert renderers.to_jsonable(np.ones((1, 3), dtype=np.float32)) == [[1.0, 1.0, 1.0]]
    big = renderers.to_jsonable(np.zeros((100, 100)))
    assert big["shape"] == [100, 100] and len(big["first values"]) == 16


def test_image_results_pass_through_and_bytes_are_decoded():
    picture = Image.new("RGB", (8, 8), (1, 2, 3))
    assert render_media.image(picture, {}) == (picture,)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    (decoded,) = render_media.image(buffer.getvalue(), {})
    assert decoded.getpixel((0, 0)) == (1, 2, 3)
