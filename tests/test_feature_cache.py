"""The frozen-encoder feature cache: what it returns, when it hits, what it keys on, and how training uses it."""

from __future__ import annotations

import pytest
import torch

from cosegkit.models import feature_cache
from cosegkit.models.encoders import build_encoder
from cosegkit.models.feature_cache import FeatureCache, encoder_digest, tensor_digest
from cosegkit.train.modeling import build_model, make_optimizer
from cosegkit.train.settings import ModelSettings


def _encoder(seed: int = 0):
    torch.manual_seed(seed)
    return build_encoder("tiny", False).eval()


def test_frozen_encoder_returns_what_it_computes_image_by_image_and_hits_on_repeats():
    enc = _encoder()
    x = torch.randn(3, 3, 64, 64)
    want = [torch.cat([enc.compute(x[i : i + 1])[lvl] for i in range(3)]) for lvl in range(5)]
    enc.freeze()
    got = enc(x)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert (enc.feature_cache.misses, enc.feature_cache.hits) == (3, 0)
    again = enc(torch.cat([x[2:], x[:1]]))  # same images, other batch and order
    assert torch.equal(again[-1][0], want[-1][2]) and torch.equal(again[-1][1], want[-1][0])
    assert (enc.feature_cache.misses, enc.feature_cache.hits) == (3, 2)
    flipped = enc(x.flip(-1)[:1])  # another view is another input
    assert enc.feature_cache.misses == 4 and not torch.equal(flipped[-1][0], want[-1][0])


def test_frozen_encoder_has_no_gradients_and_stays_in_eval_mode():
    enc = _encoder().freeze()
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())
    out = enc(torch.randn(2, 3, 32, 32, requires_grad=True))
    assert not any(o.requires_grad for o in out)


def test_keys_depend_on_weights_shape_and_values():
    a, b = _encoder(0), _encoder(1)
    assert encoder_digest(a) == encoder_digest(_encoder(0)) != encoder_digest(b)
    x = torch.zeros(3, 32, 32)
    assert tensor_digest(x) != tensor_digest(torch.zeros(3, 32, 33)) != tensor_digest(x.double())
    y = x.clone()
    y[0, 0, 0] = 1e-6
    assert tensor_digest(x) != tensor_digest(y)
    assert tensor_digest(x) == tensor_digest(x[None].contiguous(memory_format=torch.channels_last)[0])


def test_features_are_float32_under_bf16_autocast_and_shared_with_float32_runs(monkeypatch):
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    enc = _encoder()
    x = torch.randn(2, 3, 32, 32)
    want = [torch.cat([enc.compute(x[i : i + 1])[lvl] for i in range(2)]) for lvl in range(5)]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert enc.compute(x[:1])[-1].dtype == torch.bfloat16  # what the encoder would do unguarded
        enc.freeze()
        got = enc(x)  # a bf16 run fills the cache first
    assert all(g.dtype == torch.float32 and torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert all(torch.equal(g, w) for g, w in zip(enc(x), want, strict=True))  # a float32 run reads them
    assert (enc.feature_cache.misses, enc.feature_cache.hits) == (2, 2)


def test_channels_last_weights_get_keys_of_their_own(monkeypatch):
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    enc = _encoder().freeze()
    x = torch.randn(1, 3, 32, 32)
    plain = enc(x)
    assert feature_cache.weight_layout(enc) == ""
    enc.to(memory_format=torch.channels_last)
    assert feature_cache.weight_layout(enc) == "channels_last"
    got = enc(x.contiguous(memory_format=torch.channels_last))
    assert (enc.feature_cache.misses, enc.feature_cache.hits) == (2, 0)  # not served the other layout's bits
    assert all(torch.allclose(g, p, atol=1e-5) for g, p in zip(got, plain, strict=True))
    enc(x)  # the input's own layout does not matter, only the weights'
    assert (enc.feature_cache.misses, enc.feature_cache.hits) == (2, 1)


def test_a_folder_shares_features_between_caches_and_damaged_files_are_recomputed(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    enc = _encoder()
    x = torch.randn(2, 3, 32, 32)
    first = FeatureCache(enc, tmp_path)(x)
    files = sorted(tmp_path.rglob("*.pt"))
    assert len(files) == 2 and all(encoder_digest(enc) in str(f) for f in files)
    monkeypatch.setattr(feature_cache, "_MEMORY", {})  # a new process: empty memory, same folder
    other = FeatureCache(enc, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(other(x), first, strict=True))
    assert (other.hits, other.misses) == (2, 0)
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    files[0].write_bytes(b"truncated")
    third = FeatureCache(enc, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(third(x), first, strict=True))
    assert third.misses == 1


def test_freeze_encoder_setting_trains_only_the_rest_and_keeps_state_dict_keys():
    ms = ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True)
    model = build_model(ms)
    plain = build_model(ModelSettings(family="unet", encoder="tiny", pretrained=False))
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert model.encoder.frozen and not plain.encoder.frozen
    opt = make_optimizer(model, type("O", (), {"lr": 0.1, "encoder_lr_mult": 1.0, "optimizer": "sgd",
                                               "momentum": 0.9, "weight_decay": 0.0})())
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert trained and not any(id(p) in trained for p in model.encoder.parameters())
    model.train()
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    out["logits_a"].sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_level_modules_compose_to_the_encoders_forward():
    torch.manual_seed(0)
    for enc in (_encoder(), build_encoder("efficientnet_lite0", False).drop_classifier().eval()):
        x = torch.randn(1, 3, 64, 64)
        want, y = enc.compute(x), x
        for level, module in enumerate(enc.level_modules()):
            y = module(y)
            assert torch.equal(y, want[level])


def test_tuned_levels_start_at_the_frozen_features_train_alone_and_leave_the_cache_pristine(monkeypatch):
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    ms = ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tune_encoder_levels=2)
    torch.manual_seed(0)
    model = build_model(ms)
    enc = model.encoder
    x = torch.randn(2, 3, 64, 64)
    want = [torch.cat([enc.compute(x[i : i + 1])[lvl] for i in range(2)]) for lvl in range(5)]
    got = enc(x)
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got, want, strict=True))
    assert [g.requires_grad for g in got] == [False, False, False, True, True]
    pristine = {k: v.clone() for k, v in enc.state_dict().items() if not k.startswith("tuned_levels.")}
    opt = make_optimizer(model, type("O", (), {"lr": 0.1, "encoder_lr_mult": 1.0, "optimizer": "sgd",
                                               "momentum": 0.0, "weight_decay": 0.0})())
    model.train()
    assert not any(m.training for m in enc.modules())  # BatchNorm of the copies keeps its statistics too
    out = model(x, x.flip(-1))
    (out["logits_a"].sum() + out["logits_b"].sum()).backward()
    tuned = list(enc.tuned_levels.parameters())
    assert tuned and all(p.grad is not None for p in tuned)
    assert all(p.grad is None for n, p in enc.named_parameters() if not n.startswith("tuned_levels."))
    opt.step()
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in pristine.items())
    after = enc(x)
    assert all(torch.equal(a, w) for a, w in zip(after[:3], want[:3], strict=True))  # the cached levels
    assert not torch.allclose(after[-1], want[-1], atol=1e-3)  # the tuned deepest level moved
    assert all(torch.equal(a, w) for a, w in zip(enc.feature_cache(x), want, strict=True))  # cache unchanged


def test_tune_encoder_levels_is_checked_against_freeze_encoder_and_the_encoder():
    with pytest.raises(ValueError, match="needs model.freeze_encoder"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, tune_encoder_levels=1)
    with pytest.raises(ValueError, match="from 0 to 4"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tune_encoder_levels=5)
    with pytest.raises(ValueError, match="from 0 to 4"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tune_encoder_levels=1.5)
    with pytest.raises(ValueError, match="resnet50.*levels"):
        build_encoder("resnet50", False).freeze(tune_levels=1)
    enc = build_encoder("efficientnet_lite0", False)
    with pytest.raises(ValueError, match="tuned_float32=True needs tune_levels > 0"):
        enc.freeze(tuned_float32=True)
    assert not enc.frozen and all(p.requires_grad for p in enc.parameters())  # refused before any change
    with pytest.raises(ValueError, match="tuned_levels_float32=true needs model.tune_encoder_levels > 0"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tuned_levels_float32=True)
    with pytest.raises(ValueError, match="tuned_levels_float32 must be true or false"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tune_encoder_levels=1,
                      tuned_levels_float32=1)


def test_tuned_levels_float32_run_the_copies_in_float32_inside_bf16_autocast(monkeypatch):
    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    x = torch.randn(2, 3, 64, 64)
    outputs = {}
    for tuned_float32 in (False, True):
        ms = ModelSettings(family="unet", encoder="tiny", pretrained=False, freeze_encoder=True, tune_encoder_levels=2,
                           tuned_levels_float32=tuned_float32)
        torch.manual_seed(0)
        enc = build_model(ms).encoder
        want = [enc.compute(x[i : i + 1]) for i in range(2)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = enc(x)
        outputs[tuned_float32] = got
        assert [g.dtype for g in got[:3]] == [torch.float32] * 3  # the cached levels, float32 either way
        want_dtype = torch.float32 if tuned_float32 else torch.bfloat16
        assert [g.dtype for g in got[3:]] == [want_dtype] * 2, tuned_float32
        if tuned_float32:  # float32 inside the bf16 region: the encoder's own float32 result
            assert all(torch.allclose(got[lvl], torch.cat([w[lvl] for w in want]), atol=1e-5) for lvl in (3, 4))
        else:
            assert not torch.allclose(got[4].float(), torch.cat([w[4] for w in want]), atol=1e-5)


def test_a_run_with_tuned_levels_saves_them_and_evaluate_scores_it_as_training_did(tmp_path, monkeypatch):
    from cosegkit.train import train
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.evaluate import evaluate_run
    from cosegkit.train.experiments import build_settings
    from cosegkit.train.run_cache import run_key

    monkeypatch.setattr(feature_cache, "_MEMORY", {})
    tuned = {"model.freeze_encoder": True, "model.tune_encoder_levels": 1}
    plain = build_settings("unet-dice", "smoke", overrides={"model.freeze_encoder": True})
    assert run_key(build_settings("unet-dice", "smoke", overrides=tuned)) != run_key(plain)
    result = train("unet-dice", "smoke", tmp_path / "run", overrides={**tuned, "progress": False})
    _, model, _ = load_trained_model(result.run_dir, device="cpu")
    enc = model.encoder
    deepest = dict(enc.level_modules()[-1].named_parameters())
    moved = [not torch.equal(p, deepest[n]) for n, p in enc.tuned_levels[0].named_parameters()]
    assert moved and all(moved)  # trained, saved and restored; the frozen level kept its weights
    report = evaluate_run(result.run_dir, progress=False)
    assert report["positive"]["jaccard"] == pytest.approx(result.test["positive"]["jaccard"], abs=1e-9)
