# TensorBoard event files from tensorboard's own writer, and tensorboard's own reader run on selfsup's files.
#
#   write: torch.utils.tensorboard.SummaryWriter (torch 1.13, whose EventFileWriter, RecordWriter and masked CRC32C
#          are tensorboard's summary/writer/*.py and compat/tensorflow_stub) logs scalars, an image and a text to
#          test/fixtures/io/tensorboard/golden.tfevents, and what it logged to golden.json. test/io/tensorboard.test.ts
#          reads the file back with its spec-written reader.
#   check DIR: tensorboard's EventFileLoader (backend/event_processing) reads every event file under DIR (e.g. a
#          selfsup run's tb/) and prints what it found as JSON lines, or fails on a bad record.
#
# Debian ships neither the tensorboard Python package nor TensorFlow. To run this script, make a tensorboard source
# tree importable (a checkout of github.com/tensorflow/tensorboard; written with commit 70b76c922), then:
#   apt-get install protobuf-compiler libprotobuf-dev python3-protobuf python3-absl
#   cd TB && protoc -I. -I/usr/include --python_out=. tensorboard/compat/proto/*.proto tensorboard/plugins/*/*.proto
#   PYTHONPATH=TB /usr/bin/python3 reference/tensorboard_golden.py write
import glob
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "io", "tensorboard")


def write():
    import shutil
    import tempfile

    from torch.utils.tensorboard import SummaryWriter

    tmp = tempfile.mkdtemp()
    w = SummaryWriter(log_dir=tmp)
    wall = 1700000000.0
    scalars = []
    for step in range(3):
        for tag, value in (("loss", 2.5 - 0.5 * step), ("lr", 0.03 * (step + 1))):
            w.add_scalar(tag, value, step, walltime=wall + step)
            scalars.append({"tag": tag, "step": step, "value": value})
    # a 3 x 4 RGB image with known pixels (CHW, uint8)
    img = np.arange(3 * 3 * 4, dtype=np.uint8).reshape(3, 3, 4) * 7
    w.add_image("augmentations", img, 5, walltime=wall + 5)
    w.add_text("config", "lr: 0.03\nepochs: 3", 0, walltime=wall + 6)
    w.close()
    files = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
    assert len(files) == 1, files
    os.makedirs(OUT_DIR, exist_ok=True)
    shutil.copyfile(files[0], os.path.join(OUT_DIR, "golden.tfevents"))
    expected = {
        "writer": "torch.utils.tensorboard.SummaryWriter (torch 1.13) over tensorboard 70b76c922",
        "fileVersion": "brain.Event:2",
        "scalars": scalars,
        "image": {"tag": "augmentations", "step": 5, "width": 4, "height": 3, "colorspace": 3,
                  "rgb": img.transpose(1, 2, 0).reshape(-1).tolist()},
        "text": {"tag": "config/text_summary", "step": 0, "text": "lr: 0.03\nepochs: 3"},
    }
    with open(os.path.join(OUT_DIR, "golden.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    shutil.rmtree(tmp)
    print("wrote", os.path.join(OUT_DIR, "golden.tfevents"))


def check(logdir):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    files = sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True))
    assert files, f"no event files under {logdir}"
    for path in files:
        for event in EventFileLoader(path).Load():
            kind = event.WhichOneof("what")
            if kind == "file_version":
                print(json.dumps({"file": os.path.basename(path), "file_version": event.file_version}))
                continue
            # EventFileLoader migrates legacy values to tensors with plugin metadata (data_compat.migrate_value), as
            # TensorBoard's backend sees them
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                rec = {"step": event.step, "tag": v.tag, "plugin": plugin}
                t = tensor_util.make_ndarray(v.tensor)
                if plugin == "scalars":
                    rec["scalar"] = float(t)
                elif plugin == "images":
                    rec["image"] = [int(t[0]), int(t[1]), len(t[2])]
                elif plugin == "text":
                    rec["text"] = t.reshape(-1)[0].decode()[:40]
                print(json.dumps(rec))

if __name__ == "__main__":
    if sys.argv[1:2] == ["write"]:
        write()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        sys.exit("usage: tensorboard_golden.py write | check LOGDIR")
