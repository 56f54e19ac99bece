"""What Tandem hands Ray Serve, checked without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from torch import manual_seed

from factories import REPO, make_manifest
from tandem.cluster.ingress import haproxy_state_dir, serve_env
from tandem.cluster.layout import PortPlan
from tandem.errors import SpecError
from tandem.models import build_model
from tandem.registry import Registry
from tandem.serve.app import GATEWAY_APP, deployment_options
from tandem.serve.control import deployed_spec, is_model_app, model_app_config
from tandem.serve.resolve import live_versions
from tandem.serve.routing import CanaryTarget, LiveVersions, ShadowTarget
from tandem.settings import Settings
from tandem.specs.base import load
from tandem.specs.cluster import pool_resource
from tandem.specs.deployment import DeploymentSpec
from tandem.specs.files import deployment_specs

SPEC = DeploymentSpec.model_validate(
    {
        "model": "digits",
        "version": "production",
        "batching": {"max_batch_size": 8, "max_wait_ms": 3},
        "autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 4},
        "max_ongoing_requests": 16,
        "max_queued_requests": 10,
        "cpus_per_replica": 1.5,
        "canary": {"version": 2, "weight": 10},
    }
)
LIVE = LiveVersions(default=1, canary=CanaryTarget(version=2, weight=10), aliases={"production": 1})


def test_deployment_options_follow_the_spec() -> None:
    options = deployment_options(SPEC, LIVE)
    assert options["max_ongoing_requests"] == 16 and options["max_queued_requests"] == 10
    assert options["backpressure_config"]["status_code"] == 503
    assert options["backpressure_config"]["retry_after_s"] > 0
    assert options["autoscaling_config"]["max_replicas"] == 3
    assert options["ray_actor_options"]["num_cpus"] == 1.5
    assert pool_resource("serve") in options["ray_actor_options"]["resources"]
    assert LiveVersions.model_validate(options["user_config"]) == LIVE


def test_canary_travels_only_in_user_config_and_round_trips() -> None:
    config = model_app_config(SPEC, LIVE)
    assert "canary" not in config["args"]  # args changes restart replicas; user_config does not
    assert config["route_prefix"] == "/v2/models/digits"
    spec, live = deployed_spec(config)
    assert live == LIVE
    assert spec.canary is not None and (spec.canary.version, spec.canary.weight) == (2, 10)
    assert spec.batching == SPEC.batching


def test_haproxy_env_stays_inside_the_clusters_ports_and_folders() -> None:
    settings = Settings.from_env()
    cluster = Settings(settings.home, None, 21000, None, settings.cluster_file)
    env = serve_env(cluster)
    low, high = PortPlan(21000).direct_ingress_range()
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT")]
    assert all(21000 <= p < 22000 for p in ports)
    assert int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]) == low
    assert int(env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"]) == high
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    state = haproxy_state_dir(cluster)
    assert paths and all(Path(p).is_relative_to(state) for p in paths)
    # Serve nests each socket under a 56-character node id; HAProxy allows 97 bytes.
    assert all(len(p) + 57 <= 97 for p in paths)


def test_shadow_travels_only_in_user_config_and_round_trips() -> None:
    shadow = {"version": "candidate", "share": 40}
    spec = DeploymentSpec.model_validate({**SPEC.model_dump(exclude={"canary"}), "shadow": shadow})
    live = LiveVersions(default=1, shadow=ShadowTarget(version=3, share=40))
    config = model_app_config(spec, live)
    assert "shadow" not in config["args"] and "canary" not in config["args"]
    back, back_live = deployed_spec(config)
    assert back_live == live and back.canary is None
    assert back.shadow is not None and (back.shadow.version, back.shadow.share) == (3, 40)
    assert LiveVersions.model_validate(deployment_options(back, live)["user_config"]) == live


@pytest.mark.parametrize("share", [-1, 101, "half"])
def test_a_shadow_share_outside_0_to_100_is_refused(share: object) -> None:
    with pytest.raises(SpecError) as caught:
        load(DeploymentSpec, {"model": "digits", "shadow": {"version": 2, "share": share}})
    assert any(p.startswith("shadow.share") for p in caught.value.problems), caught.value
    with pytest.raises(SpecError, match=r"shadow\.version"):
        load(DeploymentSpec, {"model": "digits", "shadow": {"share": 5}})


def test_a_shadow_resolves_like_a_canary_and_goes_when_it_becomes_the_default(
    tmp_path: Path,
) -> None:
    registry = Registry(str(tmp_path))
    manifest = make_manifest("digits").model_copy(update={"kwargs": {"hidden": [8]}})
    for seed in (1, 2):
        manual_seed(seed)
        model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, 3)
        registry.register(manifest, model.state_dict())
    registry.set_alias("digits", "production", 1)
    registry.set_alias("digits", "candidate", 2)
    spec = load(DeploymentSpec, {"model": "digits", "shadow": {"version": "candidate", "share": 5}})
    live = live_versions(spec, registry)
    assert live.shadow == ShadowTarget(version=2, share=5) and live.loaded() == {1, 2}
    # Aliases name versions that answer: the shadow-only one has none.
    assert live.aliases == {"production": 1}
    registry.set_alias("digits", "production", 2)  # the shadow was promoted
    promoted = live_versions(spec, registry)
    assert promoted.default == 2 and promoted.shadow is None


def test_an_app_from_serve_deploy_has_its_spec_and_no_live_versions_yet() -> None:
    """``serve deploy deployments/x.yaml`` leaves no user_config: the replicas resolved the
    spec themselves, so Tandem reads the spec and resolves the versions it serves."""
    shipped = yaml.safe_load((REPO / "deployments" / "digits-mlp.yaml").read_text())
    apps = {app["name"]: app for app in shipped["applications"]}
    assert is_model_app(apps["digits-mlp"]) and not is_model_app(apps[GATEWAY_APP])
    spec, live = deployed_spec(apps["digits-mlp"])
    assert live is None and spec.model == "digits-mlp" and spec.version == "production"
    # The same file through `tandem deploy`/`validate`: its model app only, gateway skipped.
    assert [s.model for s in deployment_specs(REPO / "deployments" / "digits-mlp.yaml")] == [
        "digits-mlp"
    ]
