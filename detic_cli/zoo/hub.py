"""Files from Hugging Face Hub repositories (`hf://owner/repo[@rev]/path`) through huggingface_hub."""

from __future__ import annotations

from pathlib import Path

from detic_cli.errors import DeticError, brief
from detic_cli.zoo.http import NotFound


def hf_file(repo_id: str, filename: str, revision: str | None, *, offline: bool) -> Path:
    """The local path of `filename` in the Hub repository `repo_id`, downloaded into the Hub's own
    cache (resumable, locked and verified by huggingface_hub) or, when `offline`, taken from that
    cache only. Raises NotFound when the repository has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hf://{repo_id}{'@' + revision if revision else ''}/{filename}"
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline))
    except LocalEntryNotFoundError as exc:
        if offline:
            raise NotFound(f"{where} is not in the Hugging Face cache (offline)") from exc
        raise DeticError(f"{where}: cannot reach the Hugging Face Hub; check the network") from exc
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFound(f"{where} does not exist") from exc
    except HfHubHTTPError as exc:
        raise DeticError(f"{where}: {brief(exc)}") from exc
