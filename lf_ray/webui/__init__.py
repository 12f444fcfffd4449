"""The web board (`lf-ray webui`): LLaMA Board's train / evaluate / chat / export tabs, plus the run store,
launching `lf-ray train|eval|export` as Ray jobs on a cluster or as local processes."""
