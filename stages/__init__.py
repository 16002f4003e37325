"""Stage runners: LoRA training on a start model, one stage per module.

Entry points: `harness.stages.domain.train_domain`, `harness.stages.instruct.train_instruct` and
`harness.stages.merge.merge_parent_adapter`. They are not re-exported here, so that importing one module
does not import the trainers (and torch) of the others.
"""
