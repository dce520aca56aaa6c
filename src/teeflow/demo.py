"""``teeflow demo``: a local platform, several organisations, real data, and who saw what.

Scenarios (all data ships with installed packages; nothing is downloaded):
- medical: two hospitals split scikit-learn's breast-cancer screening records by rows; an AI
  company proposes training with the built-in tabular MLP; the model is a joint output of the two
  hospitals (it never leaves the enclave) and one hospital then scores new patients with it,
  which both approve, and measures the model's AUC and accuracy itself on those held-back
  patients against diagnoses that never entered the enclave. Plus a CNN on scikit-learn's 8x8
  digits, a stand-in for MedMNIST images.
- credit: a bank (labels + application fields) and a credit bureau (bureau fields) split the
  German Credit table by columns; PSI tells each only its own customers' membership, then a
  logistic model trains on the join inside the enclave: the bank gets the model and full
  metrics, the bureau only the disclosed AUC / KS / accuracy.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teeflow.attestation import Policy, SimQuotingKey, sim_measurement
from teeflow.client import ApiError, Client, MemberHome
from teeflow.client.keyring import MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

__all__ = ["DemoReport", "run_demo"]


@dataclass
class DemoReport:
    data_dir: str
    measurement: str
    tasks: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "simulated": True,
            "measurement": self.measurement,
            "tasks": self.tasks,
            "who_saw_what": self.seen,
            "results": self.results,
        }


class _Demo:
    def __init__(self, platform: LocalPlatform, report: DemoReport, say: Callable[[str], None]):
        self.platform = platform
        self.report = report
        self.say = say
        self.members: dict[str, Client] = {}
        quoting_key = SimQuotingKey.load_or_create(platform.data_dir / "platform")
        # Each member's own policy: simulation explicitly allowed for this local demo only, the
        # measurement computed by the member from its own installed copy of the code.
        self.policy = Policy(
            allowed_tees=frozenset({"sim"}),
            allow_simulated=True,
            sim_quoting_keys=frozenset({quoting_key.public_key_hex}),
            allowed_measurements=frozenset({report.measurement}),
            accepted_tcb_statuses=frozenset({"Simulated"}),
        )

    def member(self, name: str) -> Client:
        if name not in self.members:
            home = MemberHome(self.platform.data_dir / "members" / name)
            keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
            client = Client(self.platform.url, keys=keys, home=home, policy=self.policy)
            password = secrets.token_urlsafe(16)  # demo members sign in once, in this process
            client.register(name, password)
            client.login(name, password, remember=False)
            client.attest()
            self.members[name] = client
        return self.members[name]

    def close(self) -> None:
        for client in self.members.values():
            client.close()

    def task(
        self,
        title: str,
        creator: str,
        function: str,
        *,
        inputs: Mapping[str, str],
        outputs: Mapping[str, Mapping[str, list[str]]],
        arguments: Mapping[str, Any] | None = None,
        progress_to: list[str] | None = None,
    ) -> dict[str, Any]:
        owner = self.member(creator)
        proposed = owner.propose(
            function,
            inputs=inputs,
            outputs=outputs,
            arguments=arguments,
            disclosure={"progress": progress_to or [creator], "errors": [creator]},
            description=title,
        )
        for name in proposed["contract"]["participants"]:
            self.member(name).approve(proposed["id"])
        owner.run(proposed["id"])
        done = owner.wait(proposed["id"], timeout=600)
        if done["status"] != "succeeded":
            raise RuntimeError(f"demo task {title!r} {done['status']}: {done['failure_reason']}")
        receipt = owner.receipt(proposed["id"])["body"]
        self.report.tasks.append(
            {
                "title": title,
                "id": done["id"],
                "function": function,
                "status": done["status"],
                "participants": sorted(proposed["contract"]["participants"]),
                "receipt_signed_by_enclave": True,
                "outputs": sorted(receipt["outputs"]),
            }
        )
        self.say(f"  {title}: {done['status']} (receipt verified)")
        self._who_saw(done, sorted(proposed["contract"]["participants"]))
        return done

    def _who_saw(self, task: Mapping[str, Any], participants: list[str]) -> None:
        for slot, spec in task["contract"]["outputs"].items():
            readable, denied = [], []
            for name in participants:
                try:
                    self.member(name).output(task["id"], slot)
                    readable.append(name)
                except ApiError:
                    denied.append(name)
            self.report.seen.append(
                {
                    "task": task["contract"].get("description", ""),
                    "output": slot,
                    "readable_by": readable,
                    "refused_to": denied,
                    "joint_owners": spec.get("joint_owners"),
                    "operator": "ciphertext only",
                }
            )

    def json_output(self, task: Mapping[str, Any], slot: str, reader: str) -> dict[str, Any]:
        data = self.member(reader).output(task["id"], slot)
        assert isinstance(data, bytes)
        result: dict[str, Any] = json.loads(data)
        return result


def held_back_quality(
    predictions: bytes, labelled: bytes, *, id_column: str, label: str
) -> dict[str, Any]:
    """AUC and accuracy of a ``tabular-predict`` output against labels the recipient holds.

    Joins the two CSVs on ``id_column``; every predicted row must have a label. Returns
    ``{"rows", "auc", "accuracy"}`` (AUC of ``probability``, accuracy of the 0/1 ``label``).
    """
    import io

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    scored = pd.read_csv(io.BytesIO(predictions))
    truth = pd.read_csv(io.BytesIO(labelled)).set_index(id_column)[label]
    actual = truth.loc[scored[id_column]].to_numpy()
    return {
        "rows": len(scored),
        "auc": round(float(roc_auc_score(actual, scored["probability"])), 4),
        "accuracy": round(float((scored["label"].to_numpy() == actual).mean()), 4),
    }


def _medical(demo: _Demo) -> None:
    from teeflow.functions.datasets import breast_cancer_hospitals, digits_hospitals

    demo.say("medical screening: two hospitals, one AI company")
    files = breast_cancer_hospitals()
    a = demo.member("hospital-a").upload_dataset(
        files["hospital_a.csv"], name="patients-a", kind="table"
    )
    b = demo.member("hospital-b").upload_dataset(
        files["hospital_b.csv"], name="patients-b", kind="table"
    )
    train = demo.task(
        "breast-cancer MLP on both hospitals' records",
        "ai-company",
        "tabular-train",
        inputs={"hospital_a": a["id"], "hospital_b": b["id"]},
        outputs={
            "model": {"joint_owners": ["hospital-a", "hospital-b"]},
            "metrics": {"recipients": ["ai-company", "hospital-a", "hospital-b"]},
        },
        arguments={
            "label_column": "malignant",
            "id_column": "patient_id",
            "model": "mlp",
            "partition": "rows",
            "epochs": 30,
            "seed": 0,
        },
        progress_to=["ai-company", "hospital-a", "hospital-b"],
    )
    metrics = demo.json_output(train, "metrics", "hospital-a")
    demo.report.results["medical_tabular"] = {k: metrics[k] for k in ("auc", "ks", "accuracy")}
    joint = next(o for o in demo.member("hospital-a").outputs(train["id"]) if o["slot"] == "model")
    new = demo.member("hospital-a").upload_dataset(
        files["new_patients.csv"], name="new-patients", kind="table"
    )
    predict = demo.task(
        "hospital-a scores new patients with the joint model",
        "hospital-a",
        "tabular-predict",
        inputs={"model": joint["dataset_id"], "table": new["id"]},
        outputs={"predictions": {"recipients": ["hospital-a"]}},
    )
    rows = demo.member("hospital-a").output(predict["id"], "predictions")
    assert isinstance(rows, bytes)
    # hospital-a later learns the diagnoses of the new patients and scores the model itself, on
    # its own machine: rows the training never saw, labels that never entered the enclave.
    demo.report.results["medical_predictions"] = held_back_quality(
        rows, files["new_patients_labelled.csv"], id_column="patient_id", label="malignant"
    )
    quality = demo.report.results["medical_predictions"]
    demo.say(f"  hospital-a's own check on held-back patients: {quality}")

    images = digits_hospitals()
    ia = demo.member("hospital-a").upload_dataset(
        images["hospital_a.npz"], name="images-a", kind="images"
    )
    ib = demo.member("hospital-b").upload_dataset(
        images["hospital_b.npz"], name="images-b", kind="images"
    )
    cnn = demo.task(
        "CNN on both hospitals' images (8x8 digits standing in for MedMNIST)",
        "ai-company",
        "image-classify-train",
        inputs={"hospital_a": ia["id"], "hospital_b": ib["id"]},
        outputs={
            "model": {"joint_owners": ["hospital-a", "hospital-b"]},
            "metrics": {"recipients": ["ai-company", "hospital-a", "hospital-b"]},
        },
        arguments={"model": "cnn", "epochs": 5, "batch_size": 64, "seed": 0},
        progress_to=["ai-company"],
    )
    image_metrics = demo.json_output(cnn, "metrics", "ai-company")
    demo.report.results["medical_images"] = {"test_accuracy": image_metrics["test_accuracy"]}


def _credit(demo: _Demo) -> None:
    from teeflow.functions.datasets import german_credit_parties

    demo.say("credit risk: a bank and a credit bureau")
    files = german_credit_parties()
    bank = demo.member("bank").upload_dataset(files["bank.csv"], name="applications", kind="table")
    bureau = demo.member("bureau").upload_dataset(
        files["bureau.csv"], name="bureau-records", kind="table"
    )
    psi = demo.task(
        "PSI: which customers both hold",
        "bank",
        "psi",
        inputs={"bank": bank["id"], "bureau": bureau["id"]},
        outputs={
            "flags:bank": {"recipients": ["bank"]},
            "flags:bureau": {"recipients": ["bureau"]},
            "intersection_size": {"recipients": ["bank", "bureau"]},
        },
        arguments={"id_column": "applicant_id"},
    )
    size = demo.json_output(psi, "intersection_size", "bureau")
    train = demo.task(
        "credit model on the joined table",
        "bank",
        "tabular-train",
        inputs={"bank": bank["id"], "bureau": bureau["id"]},
        outputs={
            "model": {"recipients": ["bank"]},
            "metrics": {"recipients": ["bank"]},
            "metrics_public": {"recipients": ["bureau"]},
        },
        arguments={
            "label_column": "default",
            "id_column": "applicant_id",
            "partition": "columns",
            "model": "logistic",
            "epochs": 30,
            "seed": 0,
        },
        progress_to=["bank"],
    )
    public = demo.json_output(train, "metrics_public", "bureau")
    demo.report.results["credit"] = {"common_customers": size["size"], **public}


def run_demo(
    *, scenario: str = "all", data_dir: Path | None = None, say: Callable[[str], None] = print
) -> DemoReport:
    if scenario not in ("medical", "credit", "all"):
        raise ValueError("scenario must be medical, credit or all")
    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="teeflow-demo-"))
    report = DemoReport(data_dir=str(root), measurement=sim_measurement())
    say(f"starting a local platform in {root} (SIMULATED TEE: no hardware protection)")
    with LocalPlatform(root, executors=2) as platform:
        demo = _Demo(platform, report, say)
        try:
            if scenario in ("medical", "all"):
                _medical(demo)
            if scenario in ("credit", "all"):
                _credit(demo)
        finally:
            demo.close()
    return report
