"""ogx-tenancy-vllm-fairness: fairness and objective headers on every call OGX makes to vLLM / llm-d.

* ``plugin`` — the ``vllm_fairness`` plugin (entry point in the ``ogx_tenancy`` group): computes the
  fairness id and InferenceObjective headers for a caller from its settings (``settings``,
  ``fairness``). Imports no OGX.
* ``provider`` — the OGX external inference provider ``remote::vllm-tenancy``
  (``module: ogx_tenancy_vllm_fairness``): OGX's vLLM adapter sending the merged headers of every
  installed plugin on every upstream call (``ogx_adapter``, ``outgoing``).
"""
