"""Downloads as a client makes them: whole, resumed (`curl -C -`), HEAD; served from the num's
compressed digits, built once, whether the API reads them itself or asks the downloader."""

import io
import subprocess
import zipfile
from pathlib import Path

import httpx

from deploy.local_stack import LocalStack
from tests.e2e.helpers import api_elsewhere, download_text, submit, wait_complete
from tests.support import reference_pi_text

NUM = 300_000


def _cached_files(stack: LocalStack) -> list[Path]:
    return sorted((stack.data_dir / "zips").glob("*.deflate"))


def _forget_compressed_digits(stack: LocalStack) -> None:
    """The API then finds nothing on disk and asks the downloader, which builds them again."""
    for path in _cached_files(stack):
        path.unlink()


def test_one_num_is_compressed_once_for_all_its_jobs(
    client: httpx.Client, stack: LocalStack
) -> None:
    first, second = submit(client, NUM), submit(client, NUM)
    wait_complete(client, first)
    wait_complete(client, second)
    _forget_compressed_digits(stack)
    assert download_text(client, first) == reference_pi_text(NUM)  # the downloader compresses
    built = _cached_files(stack)
    assert [p.name for p in built] == [f"{NUM}.deflate"]
    assert download_text(client, second) == reference_pi_text(NUM)  # only once
    assert _cached_files(stack) == built and built[0].stat().st_size < NUM


def test_head_and_ranges_give_the_same_bytes_on_either_path(
    client: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    job_id = submit(client, NUM)
    wait_complete(client, job_id)
    path = f"/download_pi_job/{job_id}"
    whole = client.get(path).content
    # On the downloader's host, and elsewhere (streamed through from the downloader).
    with api_elsewhere(stack, tmp_path / "elsewhere") as elsewhere_url:
        for url in (stack.url, elsewhere_url):
            with httpx.Client(base_url=url, timeout=60) as api:
                assert api.get(path).content == whole
                head = api.head(path)
                assert head.status_code == 200 and head.content == b""
                assert int(head.headers["content-length"]) == len(whole)
                assert head.headers["accept-ranges"] == "bytes"
                part = api.get(path, headers={"Range": "bytes=100-4099"})
                assert part.status_code == 206 and part.content == whole[100:4100]
                assert part.headers["content-range"] == f"bytes 100-4099/{len(whole)}"
    beyond = client.get(path, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416 and beyond.json()["success"] is False
    text = zipfile.ZipFile(io.BytesIO(whole)).read(f"digits_of_pi_{job_id}.txt")
    assert text.decode() == reference_pi_text(NUM)


def test_curl_resumes_a_cut_download(
    client: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    job_id = submit(client, NUM)
    wait_complete(client, job_id)
    url = f"{stack.url}/download_pi_job/{job_id}"
    whole = client.get(url).content
    saved = tmp_path / "pi.zip"
    saved.write_bytes(whole[: len(whole) // 3])  # what a cut connection left
    subprocess.run(["curl", "-sS", "-f", "-C", "-", "-o", str(saved), url], check=True)
    assert saved.read_bytes() == whole
