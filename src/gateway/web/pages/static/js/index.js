// /: say which Whisper this gateway uses (readiness needs no token).
const node = document.getElementById("provider");

const NAMES = {
  openai: "OpenAI Whisper (or an OpenAI-compatible server)",
  local: "a local Whisper model running inside the gateway",
  simulated: "a simulated Whisper for tests: transcripts are not real words",
};

async function show() {
  try {
    const response = await fetch("/api/v1/ready", { cache: "no-store" });
    const ready = await response.json();
    const whisper = (ready.checks && ready.checks.whisper) || {};
    const name = NAMES[whisper.provider] || "an unknown provider";
    const model = whisper.model ? ` (model ${whisper.model})` : "";
    node.textContent = `Transcripts come from ${name}${model}. Status: ${ready.status}.`;
    node.dataset.provider = whisper.provider || "";
  } catch {
    node.textContent = "The gateway's status could not be read.";
  }
}

show();
