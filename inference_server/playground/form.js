// The task form: defaults and limits from the server, the request body, errors beside their fields.
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const NUMBER_FIELDS = ["width", "height", "num_inference_steps", "guidance", "strength", "seed", "num_images",
  "mask_blur", "mask_grow", "left", "right", "top", "bottom", "feather"];
const FIELDS_BY_TASK = {
  generate: ["width", "height"],
  inpaint: ["strength", "mask_blur", "mask_grow"],
  outpaint: ["left", "right", "top", "bottom", "feather"],
  img2img: ["strength"],
  edit: [],
};
// Where an error about a field shows when the field has no input of its own.
const ERROR_SLOTS = { images: "image", region: "mask", inpaint_area: "mask", masked_padding: "mask" };

let info = null;
let spec = null;

/** /v1/info gives steps, guidance and presets; /openapi.json (when readable) each field's range and default. */
export function configure(serverInfo, openapi) {
  info = serverInfo;
  spec = openapi;
  const defaults = info.defaults || {};
  if (defaults.num_inference_steps) $("num_inference_steps").value = defaults.num_inference_steps;
  if (defaults.guidance != null) $("guidance").value = defaults.guidance;
  const limits = info.limits || {};
  if (limits.max_images) $("num_images").max = limits.max_images;
  const presets = defaults.aspect_ratios || {};
  for (const select of [$("aspect_ratio"), $("target-ratio")]) {
    for (const ratio of Object.keys(presets)) select.add(new Option(ratio, ratio));
  }
  if (presets["1:1"]) {
    $("aspect_ratio").value = "1:1";
    [$("width").value, $("height").value] = presets["1:1"];
  }
  $("aspect_ratio").addEventListener("change", () => {
    const size = presets[$("aspect_ratio").value];
    if (size) [$("width").value, $("height").value] = size;
  });
  for (const id of ["width", "height"]) $(id).addEventListener("input", () => { $("aspect_ratio").value = ""; });
  $("random-seed").addEventListener("change", () => { $("seed").disabled = $("random-seed").checked; });
}

export function sizeMultiple() { return (info && info.defaults && info.defaults.size_multiple) || 16; }

function schemaFor(task, field) {
  const schemas = spec && spec.components && spec.components.schemas;
  const name = `${task.charAt(0).toUpperCase()}${task.slice(1)}Request`;
  const property = schemas && schemas[name] && schemas[name].properties && schemas[name].properties[field];
  if (!property) return null;
  const typed = (property.anyOf || [property]).find((p) => p.type === "integer" || p.type === "number") || property;
  return { default: property.default, minimum: typed.minimum, maximum: typed.maximum };
}

/** A tab switch: show its sections, and its own defaults and ranges where the server's spec gives them. */
export function showTask(task) {
  for (const el of document.querySelectorAll("[data-tasks]")) el.hidden = !el.dataset.tasks.split(" ").includes(task);
  $("image-file").multiple = task === "edit";
  $("image-label").dataset.i18n = task === "edit" ? "images" : "image";
  $("image-label").textContent = t($("image-label").dataset.i18n);
  for (const field of FIELDS_BY_TASK[task] || []) {
    const range = schemaFor(task, field);
    if (!range) continue;
    if (range.minimum != null) $(field).min = range.minimum;
    if (range.maximum != null) $(field).max = range.maximum;
    if (range.default != null && !$(field).dataset.touched) $(field).value = range.default;
  }
  if (!$("strength").dataset.touched && !schemaFor(task, "strength")) {
    $("strength").value = task === "img2img" ? 0.6 : 1;
  }
}

export function markTouched(event) {
  if (event.target && event.target.id) event.target.dataset.touched = "1";
}

function numberOf(id) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw;  // the server names a bad value; we do not guess
}

/** The JSON body of the task, without its images (the caller adds them). */
export function bodyFor(task) {
  const body = { prompt: $("prompt").value };
  if ($("negative_prompt").value.trim()) body.negative_prompt = $("negative_prompt").value;
  for (const id of ["num_inference_steps", "guidance", "num_images", ...FIELDS_BY_TASK[task]]) {
    const value = numberOf(id);
    if (value !== undefined) body[id] = value;
  }
  if (!$("random-seed").checked) body.seed = numberOf("seed");
  body.output_format = $("output_format").value;
  if (task === "inpaint" && $("inpaint_area").checked) body.inpaint_area = "masked";
  return body;
}

/** Fill the form from a job's params (reuse, retry). */
export function fillFrom(params, seed) {
  for (const id of ["prompt", "negative_prompt"]) $(id).value = params[id] || "";
  for (const id of NUMBER_FIELDS) {
    if (id !== "seed" && params[id] != null && $(id)) {
      $(id).value = params[id];
      $(id).dataset.touched = "1";
    }
  }
  if (params.output_format) $("output_format").value = params.output_format;
  $("aspect_ratio").value = params.aspect_ratio && params.task === "generate" ? params.aspect_ratio : "";
  $("inpaint_area").checked = params.inpaint_area === "masked";
  const fixed = seed != null;
  $("random-seed").checked = !fixed;
  $("seed").disabled = !fixed;
  if (fixed) $("seed").value = seed;
}

export function clearErrors() {
  for (const el of document.querySelectorAll(".field-error")) {
    if (el.id !== "err-api-key") el.textContent = "";
  }
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Show an API error beside the field it names (dotted names go to their first part); else under the button. */
export function showError(error) {
  const field = error.field ? String(error.field) : "";
  const base = field.split(/[.[]/)[0];
  const slot = ERROR_SLOTS[base] || base;
  const target = (field && $(`err-${slot}`)) || $("err-general");
  target.textContent = error.message;
  const input = field && (slot === "image" ? $("image-file") : $(slot));
  if (input && target !== $("err-general")) input.setAttribute("aria-invalid", "true");
  if (target.closest("[hidden]")) $("err-general").textContent = error.message;
  return target;
}
