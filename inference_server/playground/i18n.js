// English and Simplified Chinese. The browser's language picks one; the header's selector switches.
const STRINGS = {
  en: {
    title: "Qwen-Image playground", language: "Language", tasks: "Tasks",
    keyTitle: "This server needs an API key", apiKey: "API key", useKey: "Use key",
    keyHint: "Kept in this tab only (sessionStorage), sent as a Bearer header.",
    keyRejected: "The server refused this key.", forgetKey: "Forget key",
    tab_generate: "Generate", tab_inpaint: "Inpaint", tab_outpaint: "Outpaint", tab_img2img: "Image to image",
    tab_edit: "Edit",
    image: "Image", images: "Images (1 to 3)", dropHint: "Drop an image here, choose a file, or send one from the gallery.",
    inputImage: "Input image", chooseFile: "Choose a file",
    prompt: "Prompt", negativePrompt: "Negative prompt", aspectRatio: "Aspect ratio", custom: "Custom",
    width: "Width", height: "Height", steps: "Steps", guidance: "Guidance", seed: "Seed", randomSeed: "Random seed",
    numImages: "Number of images", format: "Format", strength: "Strength",
    maskTools: "Mask tools", brush: "Brush", eraser: "Eraser", rectangle: "Rectangle", brushSize: "Brush size",
    clearMask: "Clear mask", invertMask: "Invert mask", maskBlur: "Mask blur", maskGrow: "Mask grow",
    maskedOnly: "Masked area only", maskHint: "Paint the area to repaint; it shows translucent red.",
    left: "Left", right: "Right", top: "Top", bottom: "Bottom", targetRatio: "Target aspect ratio", none: "None",
    feather: "Feather", extend: "Extend {side}", outpaintHint: "Drag the handles on the edges, or type pixels.",
    generate: "Generate", cancel: "Cancel", retry: "Retry", retryNewSeed: "Retry with a new seed",
    jobs: "Jobs", noJobs: "No jobs yet.", gallery: "Gallery", loadMore: "Load more", emptyGallery: "No images yet.",
    progress: "Progress", queued: "Queued", queuedAt: "Queued, position {n}", running: "Running",
    runningStep: "Running: step {step} of {total}", succeeded: "Done", failed: "Failed", cancelled: "Cancelled",
    submitting: "Sending…", polling: "(event stream lost, polling)",
    queueFull: "Queue full, retrying in {n} s", queueStillFull: "The queue is still full: try again later.",
    details: "Image details", download: "Download", reuse: "Reuse parameters", close: "Close",
    sendInpaint: "Send to inpaint", sendOutpaint: "Send to outpaint", sendImg2img: "Send to image to image",
    model: "Model", size: "Size", task: "Task", timings: "Timings", created: "Created", notices: "Notices",
    loading: "The model is still loading…", unreachable: "The server cannot be reached.",
    networkError: "Network error: {message}",
  },
  zh: {
    title: "Qwen-Image 试玩台", language: "语言", tasks: "任务",
    keyTitle: "此服务器需要 API 密钥", apiKey: "API 密钥", useKey: "使用密钥",
    keyHint: "仅保存在此标签页（sessionStorage），以 Bearer 头发送。",
    keyRejected: "服务器拒绝了此密钥。", forgetKey: "忘记密钥",
    tab_generate: "文生图", tab_inpaint: "局部重绘", tab_outpaint: "扩图", tab_img2img: "图生图", tab_edit: "编辑",
    image: "图片", images: "图片（1 至 3 张）", dropHint: "把图片拖到这里、选择文件，或从图库发送。",
    inputImage: "输入图片", chooseFile: "选择文件",
    prompt: "提示词", negativePrompt: "反向提示词", aspectRatio: "宽高比", custom: "自定义",
    width: "宽度", height: "高度", steps: "步数", guidance: "引导强度", seed: "种子", randomSeed: "随机种子",
    numImages: "图片数量", format: "格式", strength: "重绘强度",
    maskTools: "蒙版工具", brush: "画笔", eraser: "橡皮擦", rectangle: "矩形", brushSize: "画笔大小",
    clearMask: "清除蒙版", invertMask: "反转蒙版", maskBlur: "蒙版模糊", maskGrow: "蒙版扩展",
    maskedOnly: "仅重绘蒙版区域", maskHint: "涂抹需要重绘的区域，显示为半透明红色。",
    left: "左", right: "右", top: "上", bottom: "下", targetRatio: "目标宽高比", none: "无",
    feather: "羽化", extend: "向{side}扩展", outpaintHint: "拖动边缘的手柄，或直接输入像素。",
    generate: "生成", cancel: "取消", retry: "重试", retryNewSeed: "换个种子重试",
    jobs: "任务", noJobs: "还没有任务。", gallery: "图库", loadMore: "加载更多", emptyGallery: "还没有图片。",
    progress: "进度", queued: "排队中", queuedAt: "排队中，第 {n} 位", running: "运行中",
    runningStep: "运行中：第 {step} / {total} 步", succeeded: "完成", failed: "失败", cancelled: "已取消",
    submitting: "发送中…", polling: "（事件流中断，改为轮询）",
    queueFull: "队列已满，{n} 秒后重试", queueStillFull: "队列仍然已满，请稍后再试。",
    details: "图片详情", download: "下载", reuse: "复用参数", close: "关闭",
    sendInpaint: "发送到局部重绘", sendOutpaint: "发送到扩图", sendImg2img: "发送到图生图",
    model: "模型", size: "尺寸", task: "任务", timings: "耗时", created: "创建时间", notices: "提示",
    loading: "模型仍在加载…", unreachable: "无法连接服务器。", networkError: "网络错误：{message}",
  },
};

const STORAGE_KEY = "qwenImage.lang";
let current = pickLanguage();

function pickLanguage() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved && STRINGS[saved]) return saved;
  return (navigator.languages || [navigator.language]).some((l) => /^zh/i.test(l || "")) ? "zh" : "en";
}

export function language() { return current; }

export function setLanguage(lang) {
  if (!STRINGS[lang]) return;
  current = lang;
  localStorage.setItem(STORAGE_KEY, lang);
  translatePage();
}

export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Static text: data-i18n sets textContent, data-i18n-label sets aria-label, data-i18n-alt sets alt. */
export function translatePage(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-alt]")) el.alt = t(el.dataset.i18nAlt);
  document.title = t("title");
  document.dispatchEvent(new CustomEvent("languagechange"));
}
