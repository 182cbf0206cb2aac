"""Documents named by file id (`source: {"type": "file"}`) on the embedded model, through
the official SDK: a text file and a PDF uploaded with `client.files.upload`, read by
`/v1/messages`, `count_tokens` and a batch; a file deleted before its batch request
runs errors that request alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import client_for
from tests.integration.test_local_engine import MODEL, batch_texts, local_server
from tests.pdfs import text_pdf
from tests.serverproc import Server

REPEAT = "Repeat the word in the document."


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("local-files"))
    yield server
    server.stop()


def asking(file_id: str, question: str = REPEAT) -> dict[str, Any]:
    document = {"type": "document", "source": {"type": "file", "file_id": file_id}}
    content = [document, {"type": "text", "text": question}]
    return {
        "model": MODEL,
        "max_tokens": 16,
        "temperature": 0,
        "messages": [{"role": "user", "content": content}],
    }


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_messages_and_count_tokens_read_a_file_document(local: Server, tmp_path: Path) -> None:
    client = client_for(local)
    path = tmp_path / "word.txt"
    path.write_text("The word is: banana")
    made = client.files.upload(file=path.open("rb"))
    body = asking(made.id)
    # this SDK has no `temperature` keyword: it goes in extra_body
    call = {k: v for k, v in body.items() if k != "temperature"} | {
        "extra_body": {"temperature": 0}
    }
    message = client.messages.create(**call)
    assert "banana" in text_of(message).lower()
    plain = {**body, "messages": [{"role": "user", "content": REPEAT}]}
    counted = client.messages.count_tokens(**{k: body[k] for k in ("model", "messages")})
    without = client.messages.count_tokens(**{k: plain[k] for k in ("model", "messages")})
    assert counted.input_tokens > without.input_tokens  # the document's text is counted

    client.files.delete(made.id)
    with pytest.raises(anthropic.BadRequestError) as gone:
        client.messages.create(**call)
    assert made.id in gone.value.message and "no file" in gone.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(**{k: body[k] for k in ("model", "messages")})


def test_a_batch_reads_a_text_file_and_a_pdf_and_a_deleted_file_errors_alone(
    local: Server, tmp_path: Path
) -> None:
    client = client_for(local)
    (tmp_path / "fruit.md").write_text("# Notes\n\nThe word is: banana")
    text = client.files.upload(file=(tmp_path / "fruit.md").open("rb"))
    pdf = client.files.upload(
        file=("paper.pdf", text_pdf("The word is: cherry"), "application/pdf")
    )
    gone = client.files.upload(file=("gone.txt", b"The word is: plum", "text/plain"))
    client.files.delete(gone.id)
    results = batch_texts(
        client, {"text": asking(text.id), "pdf": asking(pdf.id), "gone": asking(gone.id)}
    )
    assert results["text"].type == "succeeded" and results["pdf"].type == "succeeded"
    assert "banana" in text_of(results["text"].message).lower()
    assert "cherry" in text_of(results["pdf"].message).lower()
    assert results["gone"].type == "errored"
    error = results["gone"].error.error
    assert error.type == "invalid_request_error" and gone.id in error.message
