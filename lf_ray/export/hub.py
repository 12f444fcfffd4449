"""`export_hub_model_id`: push the committed export folder to a Hugging Face Hub model repo, as LLaMA-Factory's
`push_to_hub` after export. The token comes from the environment (HF_TOKEN, or `hf auth login`); lf-ray refuses
`hf_hub_token` in a config, which tends to be committed with it. Without a token, or with HF_HUB_OFFLINE set, the
export is refused before any weight is loaded; a push that fails later leaves the export committed and says how
to upload it by hand.
"""

from __future__ import annotations

import logging

from lf_ray import storage
from lf_ray.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)


def check_hub_push(repo_id: str) -> None:
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"`export_hub_model_id: {repo_id}` pushes to the Hugging Face Hub, but HF_HUB_OFFLINE is set. "
            "Fix: unset HF_HUB_OFFLINE, or remove export_hub_model_id and upload later (`hf upload ...`)"
        )
    if get_token() is None:
        raise ConfigError(
            f"`export_hub_model_id: {repo_id}` pushes to the Hugging Face Hub, which needs a write token. "
            "Fix: set HF_TOKEN in the environment (or run `hf auth login`)"
        )


def push_to_hub(export_dir: str, repo_id: str) -> str:
    """Create `repo_id` if needed and upload the export folder as one commit; returns the commit's URL."""
    from huggingface_hub import HfApi

    local = storage.localize(export_dir) if storage.is_uri(export_dir) else export_dir
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(local), commit_message="Upload model exported by lf-ray"
        )
    except Exception as err:  # the hub client raises its HTTP transport's own errors, which change with versions
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"the export is committed at {export_dir}, but pushing it to the hub repo {repo_id} failed: {reason}. "
            f"Fix: check the network and that the token may write to {repo_id}, then run "
            f"`hf upload {repo_id} {local}` (or re-run the export)"
        ) from None
    logger.info("Pushed %s to the hub: %s", export_dir, commit.commit_url)
    return commit.commit_url
