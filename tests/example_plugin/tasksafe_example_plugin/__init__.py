"""An example tasksafe plugin: importing it registers one of each pluggable kind."""

from tasksafe.data.datasets import dataset
from tasksafe.data.records import Kind, TaskItem
from tasksafe.generate.base import BACKENDS, GenerationParams
from tasksafe.judges.base import JUDGES, BatchJudge, Verdict
from tasksafe.mitigations.base import MitigationResult, Options, mix_in, register_mitigation, sample_pairs
from tasksafe.tasks.formats import TaskFormat, register_task

COLOURS = [("the sky at noon", "blue"), ("fresh grass", "green"), ("a ripe tomato", "red"), ("snow", "white")]


class EchoOptions(Options):
    prefix: str = "Refusing: "


@register_mitigation("echo", "k plain safety examples whose refusals open with a prefix", options=EchoOptions)
def echo(dataset, pool, budget, seed, prefix="Refusing: ") -> MitigationResult:
    from tasksafe.data.chat import ChatExample

    pairs = sample_pairs(pool, budget.resolve(len(dataset)), seed)
    safety = [ChatExample.from_turns(p.prompt, prefix + p.refusal, metadata={"mitigation": "echo"}) for p in pairs]
    return MitigationResult(mix_in(dataset, safety, seed), [p.id for p in pairs])


@JUDGES.register("apology", description="refusal when the reply apologises")
def apology_judge(word: str = "sorry"):
    return BatchJudge(lambda pairs: [Verdict("refusal" if word in r.lower() else "compliance") for _, r in pairs])


@BACKENDS.register("parrot", description="repeats the request (a stand-in for tests)")
class ParrotBackend:
    name, local_weights = "parrot", False

    @classmethod
    def for_target(cls, model, adapter=None, base_url=None, progress=False, precision="fp32"):
        return cls()

    def generate(self, conversations, params: GenerationParams = GenerationParams()):
        return [c[-1]["content"] for c in conversations]

    def scoring_model(self):
        return None


@dataset("toy-colours", Kind.TASK, [], license="CC0", description="What colour is it? (an example plugin's task)")
def _toy_colours(resolve):
    labels = tuple(colour for _, colour in COLOURS)
    return [TaskItem(f"toy-colours-{i}", "toy-colours", thing, str(labels.index(colour)), "train" if i % 2 else "test",
                     choices=labels) for i, (thing, colour) in enumerate(COLOURS * 3)]


register_task(TaskFormat("toy-colours", "label", "What colour is it?", "Colour:", body=lambda item: item.question,
                         answer_noun="colour"))
