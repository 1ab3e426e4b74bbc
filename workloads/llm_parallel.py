"""How an LLM is split across devices: tensor, pipeline and expert parallelism.

Contract: ``Parallelism(tensor=, pipeline=, expert=, microbatches=)`` says how the graph a device
runs differs from the whole model; ``check(cfg, batch)`` raises one ``ConfigError`` naming every
degree that does not divide what it splits, or a combination that is not modelled, with the
numbers. ``devices`` is how many devices the degrees use: tensor x pipeline, or the expert group
(tensor and expert share it; below).

- **Tensor** (Megatron-LM): each of ``tensor`` devices holds 1/tensor of the attention heads
  (KV heads too; when there are fewer KV heads than devices, each device keeps one KV head,
  replicated), of the MLP's intermediate features (the experts' too, unless ``expert`` > 1:
  tensor-parallel experts) and of the LM head's vocabulary (padded up to a multiple of
  ``tensor``, as Megatron-LM pads it). After the attention output projection and after the MLP
  (or MoE combine) the partial sums are all-reduced; the logits are all-gathered. Embeddings and
  norms are replicated. All tensor-parallel devices do the same work, so one device is simulated
  and the collectives are timed on its links (exact by symmetry).
- **Pipeline**: layers are split into ``pipeline`` contiguous stages on their own devices (the
  embedding with the first, the head with the last); activations are sent from stage to stage.
  With ``microbatches`` > 1 the batch is split and microbatches flow through the stages
  concurrently (GPipe-style).
- **Expert** (GShard-style): the experts of each MoE layer are spread over ``expert`` devices
  (expert e on device e mod expert, each whole). Routed token rows go to their experts' devices
  in an all-to-all and come back in a second one; each device's experts process the rows routed
  to them from every device, so a skewed expert load makes some devices slower, and the combine
  waits for the slowest. The attention runs on the same devices, in one of two ways:

  - ``tensor: 1``: data parallel: each device runs batch/expert sequences (the simulated one is
    device 0) and routes its own tokens.
  - ``tensor == expert``: tensor parallel over the same devices (Duplex's setup; DeepSpeed-MoE
    inference's tensor-sliced non-expert layers beside expert parallelism, Rajbhandari et al.,
    ICML 2022, Sec. 5; Megatron-Core's MoE "parallel folding"): every device runs the whole
    batch's attention on its share of the heads, then all-reduces it (as tensor parallelism);
    a model's dense MLP layers (interleaved with MoE layers, as GLaM's) are tensor-split too.
    The devices then hold the same tokens, so each takes its 1/tensor of the token rows (a view,
    ``moe.shard``: ceil(rows / tensor), the busiest device's), routes them and sends them to the
    experts (each device sends 1/tensor of the tokens, as in DeepSpeed-MoE's coordinated
    all-to-all and LLMSimulator's MoEScatter, src/module/communication.cpp); after the combine
    an all-gather over the tensor group (``moe.allgather``) gives every device all the rows
    again for the residual add (LLMSimulator times an all-reduce of the rows there,
    ``moe_all_reduce_for_gather`` in src/module/expert.cpp; an all-gather moves what is needed,
    about half its bytes).

  Any other ``tensor`` with ``expert`` > 1 is an error (not modelled: tensor-parallel groups
  inside data-parallel ones, or tensor x expert devices with every expert split, Megatron's
  expert-tensor-parallel layout), and so is ``expert`` > 1 with pipeline stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import ConfigError, Problem

__all__ = ["Parallelism", "SINGLE"]


@dataclass(frozen=True)
class Parallelism:
    """Degrees of parallelism (see the module docstring)."""

    tensor: int = 1
    pipeline: int = 1
    expert: int = 1
    microbatches: int = 1

    @property
    def devices(self) -> int:
        """Devices the degrees use: tensor x pipeline, or the expert group (which the tensor
        group shares) x pipeline."""
        return self.pipeline * (self.expert if self.expert > 1 else self.tensor)

    @property
    def data_parallel(self) -> int:
        """How many devices run separate sequences through the attention (expert parallelism
        with data-parallel attention); 1 when the attention is tensor parallel or on one device."""
        return self.expert // self.tensor if self.expert > 1 else 1

    @property
    def expert_tensor(self) -> int:
        """How many ways each expert's (or the dense MLP's) intermediate features are split:
        ``tensor`` without expert parallelism, 1 with it (each expert whole on one device)."""
        return self.tensor if self.expert == 1 else 1

    @property
    def token_shards(self) -> int:
        """Under expert parallelism with tensor-parallel attention, the tensor-parallel devices
        hold the same tokens and each routes 1/tensor of them (``moe.shard``); else 1."""
        return self.tensor if self.expert > 1 else 1

    def stage_of(self, layer: int, layers: int) -> int:
        return layer * self.pipeline // layers

    def check(self, cfg, batch: int) -> None:
        """Every degree must divide what it splits and the combination must be modelled (one
        error naming each problem)."""
        probs: list[Problem] = []

        def bad(path: str, message: str) -> None:
            probs.append(Problem(None, f"system.parallelism.{path}", message))

        for name in ("tensor", "pipeline", "expert", "microbatches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(name, f"expected an integer >= 1, found {value!r}")
        if probs:
            raise ConfigError(probs)
        for path, message in self.combination_problems():
            bad(path, message)
        if probs:
            raise ConfigError(probs)
        t = self.tensor
        if t > 1:
            if cfg.num_attention_heads % t:
                bad("tensor", f"{t} does not divide num_attention_heads {cfg.num_attention_heads} of '{cfg.name}'")
            kv = cfg.num_key_value_heads
            if kv % t and t % kv:
                bad("tensor", f"{t} and num_key_value_heads {kv} of '{cfg.name}': one must divide the other")
            if self.expert_tensor > 1 and cfg.intermediate_size % t:
                bad("tensor", f"{t} does not divide intermediate_size {cfg.intermediate_size} of '{cfg.name}'")
        if self.pipeline > cfg.num_hidden_layers:
            bad("pipeline", f"{self.pipeline} stages for {cfg.num_hidden_layers} layers of '{cfg.name}'")
        if self.microbatches > 1:
            if self.pipeline == 1:
                bad("microbatches", "microbatches split the batch between pipeline stages; "
                                    "pipeline is 1")
            elif batch % self.microbatches:
                bad("microbatches", f"{self.microbatches} does not divide the batch {batch}")
        if self.expert > 1:
            if not cfg.is_moe:
                bad("expert", f"'{cfg.name}' has no experts (a dense MLP)")
            elif cfg.num_local_experts % self.expert:
                bad("expert", f"{self.expert} does not divide num_local_experts "
                              f"{cfg.num_local_experts} of '{cfg.name}'")
            dp = self.data_parallel
            if dp > 1 and batch % dp:
                bad("expert", f"{self.expert} does not divide the batch {batch} (attention is data "
                              f"parallel across the expert group)")
        if probs:
            raise ConfigError(probs)

    def combination_problems(self) -> list[tuple[str, str]]:
        """(key, message) for a combination of degrees that is not modelled (independent of
        the model; ``architectures.system`` reports them at load against the YAML keys)."""
        t, e = self.tensor, self.expert
        out = []
        if e > 1 and t > 1 and t != e:
            out.append(("tensor", (
                f"{t} with expert {e} is not modelled: the attention runs tensor parallel over the "
                f"expert group's {e} devices (tensor: {e}, expert: {e}) or data parallel across them "
                f"(tensor: 1), not in tensor-parallel groups of {t}")))
        if e > 1 and self.pipeline > 1:
            out.append(("expert", "expert parallelism is modelled without pipeline stages: set "
                                  "pipeline to 1"))
        return out

    def local_heads(self, cfg) -> tuple[int, int]:
        """(query heads, KV heads) one tensor-parallel device holds."""
        t = self.tensor
        kv = cfg.num_key_value_heads
        return cfg.num_attention_heads // t, (kv // t if kv % t == 0 else 1)

    def replicas(self, op_name: str, kind: str) -> int:
        """How many devices do the work of the simulated operator ``op_name`` (of ``kind``): the
        graph holds one tensor-parallel device (its peers do the same); with expert parallelism
        device 0's attention (data or tensor parallel), its token shard's routing and combine
        and its tensor-group collectives stand for every device's, while experts and the
        all-to-alls (timed with every device's transfers) are each simulated where they run;
        pipeline stages are simulated each on its device."""
        if self.expert > 1:
            if ".moe.expert" in op_name:
                return 1
            if kind == "collective" and (".moe.dispatch" in op_name or ".moe.return" in op_name):
                return 1
            return self.expert
        return self.tensor


SINGLE = Parallelism()
