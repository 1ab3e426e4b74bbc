"""How an LLM is split across devices: tensor, pipeline and expert parallelism.

Contract: ``Parallelism(tensor=, pipeline=, expert=, microbatches=)`` says how the graph a device
runs differs from the whole model; ``check(cfg, batch)`` raises one ``ConfigError`` naming every
degree that does not divide what it splits, with the numbers.

- **Tensor** (Megatron-LM): each of ``tensor`` devices holds 1/tensor of the attention heads
  (KV heads too; when there are fewer KV heads than devices, each device keeps one KV head,
  replicated), of the MLP's intermediate features (the experts' too: tensor-parallel experts) and
  of the LM head's vocabulary (padded up to a multiple of ``tensor``, as Megatron-LM pads it). After the attention output projection and after the MLP (or MoE
  combine) the partial sums are all-reduced; the logits are all-gathered. Embeddings and norms are
  replicated. All tensor-parallel devices do the same work, so one device is simulated and the
  collectives are timed on its links (exact by symmetry).
- **Pipeline**: layers are split into ``pipeline`` contiguous stages on their own devices (the
  embedding with the first, the head with the last); activations are sent from stage to stage.
  With ``microbatches`` > 1 the batch is split and microbatches flow through the stages
  concurrently (GPipe-style).
- **Expert** (GShard-style): the experts of each MoE layer are spread over ``expert`` devices
  (expert e on device e mod expert); attention is data parallel across them (each device runs
  batch/expert sequences; the simulated one is device 0). Routed token rows go to their experts'
  devices in an all-to-all and come back in a second one; each device's experts process the rows
  routed to them from every device, so a skewed expert load makes some devices slower, and the
  combine waits for the slowest.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import ConfigError, Problem

__all__ = ["Parallelism", "SINGLE"]


@dataclass(frozen=True)
class Parallelism:
    tensor: int = 1
    pipeline: int = 1
    expert: int = 1
    microbatches: int = 1

    @property
    def devices(self) -> int:
        return self.tensor * self.pipeline * (self.expert if self.tensor == 1 else 1)

    def stage_of(self, layer: int, layers: int) -> int:
        return layer * self.pipeline // layers

    def check(self, cfg, batch: int) -> None:
        """Every degree must divide what it splits (one error naming each that does not)."""
        probs: list[Problem] = []

        def bad(path: str, message: str) -> None:
            probs.append(Problem(None, f"system.parallelism.{path}", message))

        for name in ("tensor", "pipeline", "expert", "microbatches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                bad(name, f"expected an integer >= 1, found {value!r}")
        if probs:
            raise ConfigError(probs)
        t = self.tensor
        if t > 1:
            if cfg.num_attention_heads % t:
                bad("tensor", f"{t} does not divide num_attention_heads {cfg.num_attention_heads} of '{cfg.name}'")
            kv = cfg.num_key_value_heads
            if kv % t and t % kv:
                bad("tensor", f"{t} and num_key_value_heads {kv} of '{cfg.name}': one must divide the other")
            if cfg.intermediate_size % t:
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
            if t > 1 or self.pipeline > 1:
                bad("expert", "expert parallelism is modelled with data-parallel attention: set "
                              "tensor and pipeline to 1 (tensor-parallel experts: use tensor alone)")
            if batch % self.expert:
                bad("expert", f"{self.expert} does not divide the batch {batch} (attention is data "
                              f"parallel across the expert group)")
        if probs:
            raise ConfigError(probs)

    def local_heads(self, cfg) -> tuple[int, int]:
        """(query heads, KV heads) one tensor-parallel device holds."""
        t = self.tensor
        kv = cfg.num_key_value_heads
        return cfg.num_attention_heads // t, (kv // t if kv % t == 0 else 1)

    def replicas(self, op_name: str, kind: str) -> int:
        """How many devices do the work of the simulated operator ``op_name`` (of ``kind``): the
        graph holds one tensor-parallel device (its peers do the same), and with expert
        parallelism device 0's attention stands for the data-parallel attention of every device;
        experts, pipeline stages and collectives (timed with every device's transfers, or one
        device's link under tensor parallelism) are each simulated where they run."""
        if self.tensor > 1:
            return self.tensor
        if self.expert > 1:
            return 1 if kind == "collective" or ".moe.expert" in op_name else self.expert
        return 1


SINGLE = Parallelism()
