"""What every tool does: parameters -> one client call -> Dify messages.

Tool classes stay thin and call `invoke`; this module holds no Tool subclass, so the
SDK's one-subclass-per-module loader rule holds for every tools/<name>.py.
"""

import base64
import time
from collections.abc import Generator

from qwen_client import client as qclient
from qwen_client import config, errors, files
from tools import enhance, params

BLOCKED_BY_POLICY = "unsafe_content"  # the job's error code when the server's NSFW policy blocked every image
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def invoke(tool, task: str, tool_parameters: dict) -> Generator:
    """Run one task for a Tool instance and yield its messages."""
    settings = config.from_credentials(tool.runtime.credentials)
    deadline = time.monotonic() + settings.budget_s
    prompt = str(tool_parameters.get("prompt") or "").strip()
    # Check every parameter, then fetch the inputs while Dify's signed URLs are fresh,
    # and only then spend an LLM call.
    body = params.build_body(task, tool_parameters, prompt)
    listed_inputs = params.image_list_sources(task, tool_parameters)
    if listed_inputs:
        field = params.IMAGE_LISTS[task][0]
        body[field] = [_b64(files.download(url, f"input image {number}", settings.private_hosts, deadline,
                                           param=param))
                       for number, (param, url) in enumerate(listed_inputs, 1)]
    for name, url in params.image_sources(task, tool_parameters).items():
        data = files.download(url, name, settings.private_hosts, deadline,
                              param=params.source_parameter(name, tool_parameters))
        body[name] = _b64(data)
    model = tool_parameters.get("enhance_model")
    enhanced = bool(isinstance(model, dict) and model.get("model") and prompt)
    if enhanced:
        prompt = body["prompt"] = enhance.enhance(tool.session, model, task, prompt)
        yield tool.create_text_message(f"Enhanced prompt: {prompt}\n")

    client = qclient.Client(settings, params.FIELD_LABELS)
    job, shown = {}, ""
    try:
        for job in client.run(task, body, deadline):
            text = qclient.progress_text(job)
            if text and text != shown:
                shown = text
                yield tool.create_text_message(text + "\n")
    except errors.JobError as failed:
        if failed.code != BLOCKED_BY_POLICY:
            raise
        yield from _blocked(tool, task, prompt, failed)
        return

    # Never fetch more images than were asked for, whatever the job lists; blocked ones have no file.
    wanted = body.get("num_images", 1)
    listed = [image for image in job.get("images") or [] if isinstance(image, dict)]
    blocked = [image for image in listed if image.get("blocked")]
    listed = [image for image in listed if not image.get("blocked")]
    notices = list(job.get("notices") or [])
    if len(listed) > wanted:
        notice = (f"The server listed {len(listed)} images for {wanted} requested; "
                  f"only the first {wanted} were fetched.")
        notices.append(notice)
        yield tool.create_text_message(notice + "\n")
    fetcher = client.result_fetcher(deadline, wanted) if listed else None
    images = []
    for index, image in enumerate(listed[:wanted]):
        mime = image.get("mime_type") or "image/png"
        name = f"qwen_image_{task}_{job['id']}_{index}.{EXTENSIONS.get(mime, 'png')}"
        data = fetcher.fetch(image)
        yield tool.create_blob_message(blob=data, meta={"mime_type": mime, "filename": name})
        images.append({k: image.get(k) for k in ("seed", "width", "height", "mime_type")} | {"filename": name})

    if blocked:
        yield tool.create_text_message(
            f"The server's content policy blocked {len(blocked)} image(s) of job {job['id']}: "
            f"seed(s) {', '.join(str(image.get('seed')) for image in blocked)}.\n")
    if not images:
        raise errors.JobError(f"Job {job['id']} on {client.base} succeeded but returned no images.", job["id"])
    first = images[0]
    seeds = [image["seed"] for image in images]
    summary = {
        "job_id": job["id"], "task": task, "model": job.get("model"), "prompt": prompt, "prompt_enhanced": enhanced,
        "seed": first["seed"], "seeds": seeds, "width": first["width"], "height": first["height"],
        "images": images, "timings": job.get("timings") or {}, "notices": notices,
        "cache": job.get("cache"), "blocked": [{"seed": image.get("seed"), "safety": image.get("safety")}
                                               for image in blocked],
    }
    yield tool.create_json_message(summary)
    for key in ("seed", "seeds", "width", "height", "job_id", "prompt"):
        yield tool.create_variable_message(key, summary[key])
    yield tool.create_text_message(
        f"Created {len(images)} image(s) of {first['width']}x{first['height']} "
        f"(seeds {', '.join(map(str, seeds))}) with job {job['id']}."
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _blocked(tool, task: str, prompt: str, failed) -> Generator:
    """A job whose every image the server's content policy blocked: said plainly, never a broken image."""
    yield tool.create_text_message(
        f"The server's content policy blocked every image of job {failed.job_id}; nothing was returned. "
        "Rephrase the prompt, or ask the server's operator about its SAFETY_POLICY.\n")
    yield tool.create_json_message({"job_id": failed.job_id, "task": task, "prompt": prompt, "images": [],
                                    "blocked": True, "error": {"code": failed.code, "message": str(failed)}})
    yield tool.create_variable_message("job_id", failed.job_id)
