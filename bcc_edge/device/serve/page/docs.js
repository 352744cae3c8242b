"use strict";
// The API reference, drawn from /openapi.json without any script from elsewhere.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bodyText(requestBody) {
  if (!requestBody) return null;
  return Object.entries(requestBody.content || {}).map(([type, media]) => {
    const props = (media.schema && media.schema.properties) || {};
    const fields = Object.keys(props);
    return fields.length ? `${type}: ${fields.join(", ")}` : type;
  }).join("; ");
}

async function start() {
  const spec = await (await fetch("/openapi.json")).json();
  document.getElementById("version").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("description").textContent = spec.info.description || "";
  const list = document.getElementById("endpoints");
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const card = el("article", "endpoint");
      card.append(el("h2", "", `${method.toUpperCase()} ${path}`));
      card.append(el("p", "", op.description || op.summary || ""));
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in}${p.required ? ", required" : ""})${p.description ? ": " + p.description : ""}`);
      if (params.length) card.append(el("p", "", "Parameters: " + params.join("; ")));
      const body = bodyText(op.requestBody);
      if (body) card.append(el("p", "", "Body: " + body));
      card.append(el("p", "", "Responses: " + Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description}`).join("; ")));
      list.append(card);
    }
  }
}

start();
