import pytest

torch = pytest.importorskip("torch")

from tasksafe.mitigations import safelora_project  # noqa: E402
from tasksafe.mitigations.safelora import alignment_projection  # noqa: E402


def test_projection_is_onto_the_alignment_directions():
    aligned = torch.zeros(4, 3)
    aligned[0, 0] = 2.0  # alignment moved only output row 0
    c = alignment_projection(aligned, torch.zeros(4, 3))
    assert torch.allclose(c, torch.diag(torch.tensor([2.0, 0, 0, 0])))


def test_layers_below_the_threshold_are_projected_others_kept():
    torch.manual_seed(0)
    unaligned = {"q": torch.zeros(4, 3), "v": torch.zeros(4, 3)}
    aligned = {"q": torch.eye(4, 3), "v": torch.eye(4, 3)}
    lora_a = {"q": torch.randn(2, 3), "v": torch.randn(2, 3)}
    lora_b = {"q": torch.randn(4, 2), "v": torch.zeros(4, 2)}
    lora_b["v"][:3] = torch.randn(3, 2)  # v's update lies inside the aligned subspace (rows 0-2)
    lora_b["q"][:3] = 0.0  # q's update lies entirely outside it (row 3)
    new_b, decisions = safelora_project(lora_a, lora_b, aligned, unaligned, threshold=0.5)
    by_name = {d.name: d for d in decisions}
    assert by_name["v"].similarity == pytest.approx(1.0) and not by_name["v"].projected
    assert by_name["q"].similarity == pytest.approx(0.0, abs=1e-6) and by_name["q"].projected
    assert torch.equal(new_b["v"], lora_b["v"])
    assert torch.allclose(new_b["q"], torch.zeros(4, 2))  # projected onto span(rows 0-2): nothing is left


def test_away_mode_removes_the_aligned_component():
    unaligned, aligned = {"w": torch.zeros(2, 2)}, {"w": torch.tensor([[1.0, 0.0], [0.0, 0.0]])}
    lora_a, lora_b = {"w": torch.eye(2)}, {"w": torch.tensor([[1.0, 0.0], [0.0, 3.0]])}
    new_b, decisions = safelora_project(lora_a, lora_b, aligned, unaligned, threshold=0.9, mode="away")
    assert decisions[0].projected
    assert torch.allclose(new_b["w"], torch.tensor([[0.0, 0.0], [0.0, 3.0]]))
    with pytest.raises(ValueError):
        safelora_project(lora_a, lora_b, aligned, unaligned, mode="sideways")
