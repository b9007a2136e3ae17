"""helpers.data: ImageNet-A class table, download (resume, verify, no network), safe extraction,
image decoding, the stratified subset and the dataset end to end. Offline; fixtures in tmp_path."""
import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from helpers import data

CLASSES = data.imagenet_a_classes()
WNIDS = CLASSES.wnids[:3]


@pytest.fixture(scope="module")
def processor():
    return data.default_processor()


def expected_pixels(rgb):
    """What the processor makes of a uniform colour: (v / 255 - 0.5) / 0.5 per channel."""
    return torch.tensor([(v / 255 - 0.5) / 0.5 for v in rgb])


def save_jpeg(path, colour=(200, 30, 60), size=(32, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=95)
    return path


def fake_imagenet_a(folder, per_class=2, wnids=WNIDS):
    """<folder>/<wnid>/<k>.jpg for each wnid, a README.txt and a folder that is not a class."""
    for c, wnid in enumerate(wnids):
        for k in range(per_class):
            save_jpeg(folder / wnid / f"{k:03d}.jpg", colour=(40 * c % 256, 100, 20 * k))
    save_jpeg(folder / "n00000000" / "stray.jpg")
    (folder / "README.txt").write_text("ImageNet-A, fake\n")
    return folder


def make_tar(path, add):
    """A tar at ``path``; ``add(tar)`` adds the members. Returns (path, size, md5)."""
    with tarfile.open(path, "w") as tar:
        add(tar)
    return path, path.stat().st_size, data.file_md5(path)


def tar_of(folder, path):
    """The official layout: ``folder``'s content under ``imagenet-a/`` in a tar at ``path``."""
    return make_tar(path, lambda tar: tar.add(folder, arcname="imagenet-a"))


def add_bytes(tar, name, payload=b"x", **info):
    member = tarfile.TarInfo(name)
    member.size = len(payload)
    for key, value in info.items():
        setattr(member, key, value)
    tar.addfile(member, io.BytesIO(payload))


class RangeServer(ThreadingHTTPServer):
    """Serves one payload at any path, honours ``Range: bytes=N-``, records each request's Range
    header, and can cut the next response after ``cut_after`` bytes (a dropped connection)."""

    def __init__(self, payload):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.payload, self.ranges, self.cut_after = payload, [], None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/imagenet-a.tar"


class RangeHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        payload, asked = self.server.payload, self.headers.get("Range")
        self.server.ranges.append(asked)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
        body = payload[start:]
        self.send_response(206 if asked else 200)
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            body, self.server.cut_after = body[:self.server.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload):
        server = RangeServer(payload)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/imagenet-a.tar"


# --- class table and mask ----------------------------------------------------------------------

def test_class_table_lists_200_distinct_classes_with_head_indices():
    assert len(CLASSES.wnids) == len(CLASSES.head_indices) == len(CLASSES.names) == 200
    assert len(set(CLASSES.wnids)) == 200 and len(set(CLASSES.head_indices)) == 200
    assert all(0 <= i < 1000 for i in CLASSES.head_indices)
    assert all(w.startswith("n") and len(w) == 9 for w in CLASSES.wnids)
    first = (CLASSES.wnids[0], CLASSES.head_indices[0], CLASSES.names[0])
    assert first == ("n01498041", 6, "stingray")
    assert list(CLASSES.head_indices) == sorted(CLASSES.head_indices)  # label order = head order


def test_head_mask_is_true_exactly_at_the_200_table_indices():
    mask = data.head_mask()
    assert mask.dtype == torch.bool and mask.shape == (1000,)
    assert int(mask.sum()) == 200
    assert mask.nonzero().flatten().tolist() == sorted(CLASSES.head_indices)
    logits = torch.zeros(1, 1000)
    logits[0, 1] = 10.0  # class 1 (goldfish) is not an ImageNet-A class
    logits[0, CLASSES.head_indices[5]] = 1.0
    assert int(logits.masked_fill(~mask, float("-inf")).argmax()) == CLASSES.head_indices[5]
    with pytest.raises(IndexError):
        data.head_mask(num_labels=10)


def test_data_root_follows_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "drive"))
    assert data.data_root() == tmp_path / "drive"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert data.data_root() == data.DEFAULT_ROOT


# --- download ----------------------------------------------------------------------------------

def test_download_verifies_renames_and_never_downloads_a_complete_file_again(tmp_path, serve):
    payload = np.random.default_rng(0).bytes(300_000)
    server = serve(payload)
    dest = tmp_path / "downloads" / "a.tar"
    md5 = hashlib.md5(payload).hexdigest()
    assert data.download_file(dest, server.url, len(payload), md5, progress=False) == dest
    assert dest.read_bytes() == payload and not dest.with_name("a.tar.part").exists()
    data.download_file(dest, server.url, len(payload), md5, progress=False)
    assert server.ranges == [None]


def test_interrupted_download_resumes_with_a_range_request(tmp_path, serve):
    payload = np.random.default_rng(1).bytes(400_000)
    md5 = hashlib.md5(payload).hexdigest()
    server = serve(payload)
    server.cut_after = 150_000
    dest = tmp_path / "a.tar"
    part = tmp_path / "a.tar.part"
    with pytest.raises(data.DownloadError, match="run again to resume"):
        data.download_file(dest, server.url, len(payload), md5, progress=False)
    assert part.stat().st_size == 150_000 and not dest.exists()
    data.download_file(dest, server.url, len(payload), md5, progress=False)
    assert server.ranges == [None, "bytes=150000-"]
    assert dest.read_bytes() == payload and not part.exists()


def test_a_prewritten_part_file_is_completed_not_restarted(tmp_path, serve):
    payload = np.random.default_rng(2).bytes(100_000)
    server = serve(payload)
    (tmp_path / "a.tar.part").write_bytes(payload[:60_000])
    data.download_file(tmp_path / "a.tar", server.url, len(payload),
                       hashlib.md5(payload).hexdigest(), progress=False)
    assert server.ranges == ["bytes=60000-"]
    assert (tmp_path / "a.tar").read_bytes() == payload


def test_md5_mismatch_is_a_clear_error_and_the_bad_file_is_not_kept(tmp_path):
    source = tmp_path / "source.tar"
    source.write_bytes(b"not the archive" * 100)
    dest = tmp_path / "downloads" / "imagenet-a.tar"
    with pytest.raises(data.DownloadError, match="MD5") as error:
        data.download_file(dest, source.as_uri(), source.stat().st_size, "0" * 32, progress=False)
    assert "offline" in str(error.value) and str(dest) in str(error.value)
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_no_network_gives_one_clear_error(tmp_path):
    dest = tmp_path / "downloads" / "imagenet-a.tar"
    with pytest.raises(data.DownloadError) as error:
        data.download_file(dest, closed_port_url(), 1000, "0" * 32, timeout=5, progress=False)
    message = str(error.value)
    assert "Could not download" in message and str(dest) in message
    assert "COURSE_WORLD=offline" in message
    assert isinstance(error.value, data.WorldUnavailable)
    assert not dest.exists()


# --- safe extraction ---------------------------------------------------------------------------

def assert_nothing_extracted(root):
    assert not (root / data.FOLDER).exists()
    assert not list(root.glob(".imagenet-a-extracting-*"))


def test_a_dotdot_member_is_refused_and_nothing_is_written_outside(tmp_path):
    root = tmp_path / "root"
    archive, _, _ = make_tar(tmp_path / "evil.tar", lambda tar: (
        add_bytes(tar, "imagenet-a/README.txt"), add_bytes(tar, "imagenet-a/../../escaped.txt")))
    with pytest.raises(data.UnsafeArchiveError, match="outside"):
        data.extract(archive, root)
    assert not (tmp_path / "escaped.txt").exists() and not (root / "escaped.txt").exists()
    assert_nothing_extracted(root)


def test_an_absolute_member_is_refused(tmp_path):
    root, target = tmp_path / "root", tmp_path / "absolute.txt"
    archive, _, _ = make_tar(tmp_path / "evil.tar", lambda tar: add_bytes(tar, str(target)))
    with pytest.raises(data.UnsafeArchiveError, match="absolute"):
        data.extract(archive, root)
    assert not target.exists()
    assert_nothing_extracted(root)


def test_a_link_pointing_outside_is_refused(tmp_path):
    root = tmp_path / "root"
    archive, _, _ = make_tar(tmp_path / "evil.tar", lambda tar: add_bytes(
        tar, "imagenet-a/link", b"", type=tarfile.SYMTYPE, linkname="../../.."))
    with pytest.raises(data.UnsafeArchiveError, match="link"):
        data.extract(archive, root)
    assert_nothing_extracted(root)


def test_an_interrupted_extraction_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    folder = fake_imagenet_a(tmp_path / "src" / "imagenet-a")
    archive, _, _ = tar_of(folder, tmp_path / "a.tar")
    real_extract = tarfile.TarFile.extract

    def stop_after_one_file(self, member, path, **kwargs):
        real_extract(self, member, path, **kwargs)
        if member.isfile():
            raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extract", stop_after_one_file)
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda self, path, members, **kw: [
        self.extract(m, path, **kw) for m in members])
    with pytest.raises(KeyboardInterrupt):
        data.extract(archive, tmp_path / "root")
    assert_nothing_extracted(tmp_path / "root")
    assert not data.is_complete(tmp_path / "root" / data.FOLDER)


# --- images ------------------------------------------------------------------------------------

def one_image_dataset(tmp_path, processor, save):
    """A dataset whose only class folder holds the one file ``save(path)`` writes."""
    folder = tmp_path / "imagenet-a" / WNIDS[0]
    folder.mkdir(parents=True)
    save(folder)
    return data.ImageNetA(tmp_path, processor=processor)


def save_as(mode, value, fmt="PNG", size=(20, 16), name="image"):
    def save(folder):
        image = Image.new(mode, size, value)
        image.save(folder / f"{name}.{fmt.lower()}", fmt)
    return save


def save_16bit(folder):
    Image.fromarray(np.full((16, 20), 0x8080, dtype=np.uint16)).save(folder / "deep.png")


def save_palette_with_transparency(folder):
    image = Image.new("P", (20, 16), 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    image.save(folder / "palette.png", transparency=0)


@pytest.mark.parametrize("save, rgb", [
    (save_as("L", 128, "JPEG"), (128, 128, 128)),                 # greyscale
    (save_as("CMYK", (0, 255, 255, 0), "JPEG"), (255, 0, 0)),     # CMYK red
    (save_as("RGBA", (255, 0, 0, 0)), (255, 255, 255)),           # fully transparent -> white
    (save_as("RGBA", (0, 0, 255, 255)), (0, 0, 255)),             # opaque blue stays blue
    (save_as("P", 0), (0, 0, 0)),                                 # palette without transparency
    (save_palette_with_transparency, (255, 255, 255)),            # transparent palette -> white
    (save_16bit, (128, 128, 128)),                                # 16-bit greyscale 0x8080 -> 128
    (save_as("RGB", (10, 200, 90), size=(1, 1)), (10, 200, 90)),  # a 1x1 image
], ids=["grey", "cmyk", "rgba-clear", "rgba-opaque", "palette", "palette-clear", "16bit", "1x1"])
def test_every_image_mode_becomes_a_valid_rgb_tensor(tmp_path, processor, save, rgb):
    dataset = one_image_dataset(tmp_path, processor, save)
    item = dataset[0]
    assert item["pixel_values"].shape == (3, 224, 224)
    assert item["pixel_values"].dtype == torch.float32
    centre = item["pixel_values"][:, 112, 112]
    torch.testing.assert_close(centre, expected_pixels(rgb), atol=3 / 127.5, rtol=0)
    assert not dataset.skipped


def test_a_truncated_jpeg_is_skipped_and_reported(tmp_path, processor):
    folder = tmp_path / WNIDS[0]
    good = save_jpeg(folder / "good.jpg")
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(folder / "cut.jpg", "JPEG")
    whole = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[:len(whole) // 2])
    dataset = data.ImageNetA(tmp_path, processor=processor)
    assert dataset.ids == [f"{WNIDS[0]}/cut.jpg", f"{WNIDS[0]}/good.jpg"]
    with pytest.warns(data.SkippedImageWarning, match="cut.jpg"):
        assert dataset[0] is None
    assert "truncated" in dataset.skipped[f"{WNIDS[0]}/cut.jpg"]
    assert dataset[1]["path"] == f"{WNIDS[0]}/{good.name}"


def test_a_non_image_file_is_skipped_and_reported_while_the_others_load(tmp_path, processor):
    fake_imagenet_a(tmp_path, per_class=2)
    (tmp_path / WNIDS[1] / "notes.txt").write_text("not an image")
    (tmp_path / WNIDS[1] / "empty.jpg").write_bytes(b"")
    dataset = data.ImageNetA(tmp_path, processor=processor)
    loader = DataLoader(dataset, batch_size=3, collate_fn=data.collate)
    with pytest.warns(data.SkippedImageWarning):
        batches = [batch for batch in loader if batch is not None]
    assert sorted(dataset.skipped) == [f"{WNIDS[1]}/empty.jpg", f"{WNIDS[1]}/notes.txt"]
    assert all("UnidentifiedImageError" in reason for reason in dataset.skipped.values())
    assert sum(len(batch["id"]) for batch in batches) == 6
    assert data.collate([None, None]) is None


# --- subset and end to end ---------------------------------------------------------------------

def test_stratified_subset_is_per_class_seeded_nested_and_independent_of_listing_order(
        tmp_path, processor, monkeypatch):
    fake_imagenet_a(tmp_path, per_class=10)

    def subset(n, seed):
        return data.ImageNetA(tmp_path, processor=processor, n_per_class=n, seed=seed).ids

    four = subset(4, seed=0)
    assert [i.split("/")[0] for i in four] == [w for w in WNIDS for _ in range(4)]
    assert four == subset(4, seed=0)
    assert four != subset(4, seed=1)
    assert set(subset(2, seed=0)) < set(four)
    assert len(subset(50, seed=0)) == 30  # a class with fewer images gives all it has
    real_iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: reversed(list(real_iterdir(self))))
    assert subset(4, seed=0) == four


def test_fake_archive_to_dataloader_gives_the_table_labels(tmp_path, processor):
    source = fake_imagenet_a(tmp_path / "src" / "imagenet-a", per_class=2)
    archive, size, md5 = tar_of(source, tmp_path / "fake.tar")
    root = tmp_path / "root"
    folder = data.ensure_imagenet_a(root, url=archive.as_uri(), size=size, md5=md5, progress=False)
    assert folder == root / "imagenet-a" and (folder / data.COMPLETE_MARKER).is_file()
    assert (root / data.ARCHIVE).is_file()
    # complete folder: no download or extraction again, even from an unreachable URL
    assert data.ensure_imagenet_a(root, url=closed_port_url(), size=size, md5=md5) == folder

    dataset = data.ImageNetA(folder, processor=processor)
    assert len(dataset) == 6 and "n00000000/stray.jpg" not in dataset.ids
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=dataset.collate))
    labels = torch.cat([batch["label"] for batch in batches]).tolist()
    class_idx = torch.cat([batch["class_idx"] for batch in batches]).tolist()
    assert class_idx == [0, 0, 1, 1, 2, 2]
    assert labels == [CLASSES.head_indices[c] for c in class_idx]
    assert batches[0]["pixel_values"].shape == (4, 3, 224, 224)
    assert batches[0]["wnid"][:2] == [WNIDS[0]] * 2
    assert batches[1]["class_name"][0] == CLASSES.names[2]
    assert dataset.head_indices == list(CLASSES.head_indices) and len(dataset.class_names) == 200


def test_ensure_uses_a_verified_archive_without_downloading(tmp_path):
    source = fake_imagenet_a(tmp_path / "src" / "imagenet-a", per_class=1)
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    _, size, md5 = tar_of(source, root / data.ARCHIVE)
    folder = data.ensure_imagenet_a(root, url=closed_port_url(), size=size, md5=md5)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted([*WNIDS, "n00000000"])


def test_ensure_refuses_a_hand_placed_archive_with_the_wrong_md5(tmp_path):
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    archive, size, _ = make_tar(root / data.ARCHIVE,
                                lambda tar: add_bytes(tar, "imagenet-a/README.txt"))
    with pytest.raises(data.DownloadError, match="MD5.*Replace it"):
        data.ensure_imagenet_a(root, url=closed_port_url(), size=size, md5="0" * 32)
    assert archive.is_file() and not (root / data.FOLDER).exists()


def test_ensure_without_data_and_without_download_says_what_to_do(tmp_path):
    with pytest.raises(data.DownloadError, match="download=False") as error:
        data.ensure_imagenet_a(tmp_path, download=False)
    assert "COURSE_DATA_DIR" in str(error.value) and "extracted copy" in str(error.value)
    (tmp_path / "imagenet-a" / WNIDS[0]).mkdir(parents=True)
    with pytest.raises(FileExistsError, match="incomplete"):
        data.ensure_imagenet_a(tmp_path, download=False)


# --- an extracted copy is recognised by its content ----------------------------------------------

def hand_extracted(root, per_class=1):
    """Every ImageNet-A class folder with ``per_class`` JPEGs, no ``.complete`` marker."""
    folder = root / data.FOLDER
    fake_imagenet_a(folder, per_class=per_class, wnids=data.imagenet_a_classes().wnids)
    (folder / "README.txt").write_text("ImageNet-A\n")
    return folder


def test_a_hand_extracted_copy_with_stray_hidden_files_is_used_as_it_is(tmp_path):
    folder = hand_extracted(tmp_path)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / data.imagenet_a_classes().wnids[3] / ".DS_Store").write_bytes(b"\0")
    (folder / data.imagenet_a_classes().wnids[5] / "._ghost.jpg").write_bytes(b"\0")
    with pytest.warns(data.IncompleteDataWarning, match=r"200 of 7,500 images"):
        assert data.ensure_imagenet_a(tmp_path, download=False) == folder
    report = data.inspect_folder(folder)
    assert report.usable and report.n_classes == 200 and report.n_images == 200
    dataset = data.ImageNetA(folder)
    assert len(dataset) == 200 and not any(".DS_Store" in i or "/._" in i for i in dataset.ids)
    assert dataset[0] is not None


def test_a_copy_missing_a_class_folder_is_not_usable_and_says_what_to_do(tmp_path):
    folder = hand_extracted(tmp_path)
    wnid = data.imagenet_a_classes().wnids[7]
    for file in (folder / wnid).iterdir():
        file.unlink()
    (folder / wnid / ".DS_Store").write_bytes(b"\0")  # a hidden file is no image
    report = data.inspect_folder(folder)
    assert not report.usable and report.missing == (wnid,)
    with pytest.raises(data.IncompleteDataError, match=f"199 of the 200.*{wnid}"):
        data.ensure_imagenet_a(tmp_path, download=False)
    assert (folder / data.imagenet_a_classes().wnids[0]).is_dir(), "good data is never deleted"


def test_archive_source_follows_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_IMAGENET_A_URL", raising=False)
    assert data.archive_source() == (data.URL, data.SIZE, data.MD5)
    monkeypatch.setenv("COURSE_IMAGENET_A_URL", "file:///mirror/imagenet-a.tar")
    with pytest.raises(ValueError, match="COURSE_IMAGENET_A_SIZE"):
        data.archive_source()
    monkeypatch.setenv("COURSE_IMAGENET_A_SIZE", "123")
    monkeypatch.setenv("COURSE_IMAGENET_A_MD5", "f" * 32)
    assert data.archive_source() == ("file:///mirror/imagenet-a.tar", 123, "f" * 32)


def test_ensure_downloads_verifies_and_extracts_a_mirror_named_by_the_environment(tmp_path, monkeypatch):
    folder = hand_extracted(tmp_path / "source")
    archive, size, md5 = tar_of(folder, tmp_path / "mirror.tar")
    monkeypatch.setenv("COURSE_IMAGENET_A_URL", archive.as_uri())
    monkeypatch.setenv("COURSE_IMAGENET_A_SIZE", str(size))
    monkeypatch.setenv("COURSE_IMAGENET_A_MD5", md5)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert data.imagenet_a_available() == (True, "the ImageNet-A download is reachable")
    extracted = data.ensure_imagenet_a(progress=False)
    assert extracted == tmp_path / "data" / data.FOLDER and data.inspect_folder(extracted).marked
    assert data.imagenet_a_available()[0]
    monkeypatch.setenv("COURSE_IMAGENET_A_URL", (tmp_path / "gone.tar").as_uri())
    assert data.imagenet_a_available()[0], "an extracted copy needs no download"
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))
    available, why = data.imagenet_a_available()
    assert not available and "neither" in why


def test_world_errors_show_as_one_message_in_jupyter(tmp_path):
    with pytest.raises(data.DownloadError) as error:
        data.ensure_imagenet_a(tmp_path, download=False)
    lines = error.value._render_traceback_()
    assert len(lines) == 1 and "COURSE_DATA_DIR" in lines[0]
    dest = tmp_path / "downloads" / "imagenet-a.tar"
    with pytest.raises(data.DownloadError) as error:
        data.download_file(dest, closed_port_url(), 1000, "0" * 32, timeout=5, progress=False)
    assert error.value.__cause__ is None and error.value.__suppress_context__, "no chained traceback"


def test_predict_decodes_in_worker_processes_and_reports_unreadable_files_in_the_main_process(
        tmp_path, processor):
    """ImageNet-A is decoded by worker processes (helpers.predict.default_workers): the rows must be
    the same as decoding in the main process, and a file a worker cannot read must still reach the
    main process's ``dataset.skipped`` with a warning there (a worker's warnings never reach a
    notebook)."""
    from transformers import ViTConfig, ViTForImageClassification

    from helpers import predict as P

    fake_imagenet_a(tmp_path, per_class=3)
    (tmp_path / WNIDS[1] / "broken.jpg").write_bytes(b"not a jpeg")
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=1000)).eval()
    in_process = data.ImageNetA(tmp_path, processor=processor)
    assert P.default_workers(in_process) >= 1 and P.default_workers(object()) == 0
    with pytest.warns(data.SkippedImageWarning, match="broken.jpg"):
        expected = P.predict(model, in_process, batch_size=4, num_workers=0, progress=False)
    in_workers = data.ImageNetA(tmp_path, processor=processor)
    with pytest.warns(data.SkippedImageWarning, match="broken.jpg"):
        rows = P.predict(model, in_workers, batch_size=4, num_workers=2, progress=False)
    assert list(in_workers.skipped) == [f"{WNIDS[1]}/broken.jpg"]
    assert "UnidentifiedImageError" in in_workers.skipped[f"{WNIDS[1]}/broken.jpg"]
    assert len(rows) == 3 * len(WNIDS)
    pd.testing.assert_frame_equal(rows, expected)
