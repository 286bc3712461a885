"""Prompt enhancement: a reverse call to the LLM the user picked in Dify."""

import re

from dify_plugin.entities.model.llm import LLMModelConfig
from dify_plugin.entities.model.message import SystemPromptMessage, UserPromptMessage

from qwen_client.errors import QwenImageError

INSTRUCTIONS = {
    "generate": "Rewrite the user's idea into one prompt for a text-to-image model.",
    "img2img": "Rewrite the user's request into one prompt describing the transformed image.",
    "inpaint": "Rewrite the user's request into one prompt describing what fills the masked area.",
    "outpaint": "Rewrite the user's request into one prompt describing the extended scene.",
}
SYSTEM = (
    "{task} Describe subject, setting, composition, lighting, style and any text to render "
    "(in quotes) in concrete visual terms, in at most 120 words, in the user's language. "
    "Answer with the prompt only: no preamble, no quotes around it, no lists."
)
# An edit model reads an instruction about images it sees, not a description of a new scene.
EDIT_SYSTEM = (
    "Rewrite the user's request into one clear edit instruction for an instruction-based image "
    "editing model (Qwen-Image-Edit). You rewrite an edit instruction, not a scene description: the "
    "model sees the input images, so say what to change and what to keep, not what the whole picture "
    "shows. The image being edited is 'image 1'; further input images are 'image 2' and 'image 3' "
    "(references, e.g. 'put the bottle from image 2 on the table in image 1'). Put any text to write in "
    "quotes. At most 80 words, in the user's language. Answer with the instruction only: no preamble, "
    "no quotes around it, no lists."
)
SYSTEMS = {"edit": EDIT_SYSTEM} | {task: SYSTEM.format(task=text) for task, text in INSTRUCTIONS.items()}
MAX_PROMPT_CHARS = 4000


def enhance(session, model: dict, task: str, prompt: str) -> str:
    """Return the rewritten prompt, or raise with a message naming the model."""
    name = f"{model.get('provider', '?')}/{model.get('model', '?')}"
    try:
        config = LLMModelConfig(
            provider=model["provider"],
            model=model["model"],
            mode=model.get("mode") or "chat",
            completion_params=model.get("completion_params") or {},
        )
        result = session.model.llm.invoke(
            model_config=config,
            prompt_messages=[
                SystemPromptMessage(content=SYSTEMS[task]),
                UserPromptMessage(content=prompt),
            ],
            stream=False,
        )
        text = result.message.content if isinstance(result.message.content, str) else ""
    except Exception as exc:
        raise QwenImageError(
            f"Prompt enhancement with {name} failed: {exc}. Clear the 'Prompt enhancer' "
            "setting to use the prompt as written."
        ) from exc
    # Reasoning models may prepend their thinking; only the answer is a prompt.
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL).strip().strip('"').strip()
    if not text:
        raise QwenImageError(f"Prompt enhancement with {name} returned an empty prompt.")
    return text[:MAX_PROMPT_CHARS]
