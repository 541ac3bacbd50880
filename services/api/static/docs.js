// The API reference: /openapi.json rendered as plain HTML, from this server alone (no CDN).

const $ = (id) => document.getElementById(id);
const METHODS = ["get", "post", "put", "delete", "head", "patch"];

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// A schema as one line: "integer, 1 to 100000000", "JobStatusBody", "string | null"...
function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  if (schema.type === "array") return `array of ${typeOf(schema.items)}`;
  let text = schema.type || "object";
  if (schema.minimum !== undefined && schema.maximum !== undefined) {
    text += `, ${schema.minimum} to ${schema.maximum}`;
  } else if (schema.minimum !== undefined) text += `, at least ${schema.minimum}`;
  else if (schema.maximum !== undefined) text += `, at most ${schema.maximum}`;
  if (schema.pattern) text += `, matching ${schema.pattern}`;
  return text;
}

function table(headings, rows) {
  const result = element("table");
  const head = result.createTHead().insertRow();
  for (const heading of headings) head.append(element("th", heading));
  const body = result.createTBody();
  for (const row of rows) {
    const line = body.insertRow();
    for (const cell of row) line.insertCell().textContent = cell;
  }
  const scroll = element("div", undefined, "scroll");
  scroll.append(result);
  return scroll;
}

function properties(schema) {
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, property]) => [
    name,
    typeOf(property),
    required.has(name) ? "required" : "",
  ]);
}

function operation(path, method, spec) {
  const card = element("section", undefined, "card");
  const title = element("h2");
  title.append(element("code", `${method.toUpperCase()} ${path}`));
  card.append(title);
  if (spec.summary) card.append(element("p", spec.summary, "state"));
  if (spec.description) card.append(element("p", spec.description));

  const parameters = (spec.parameters || []).map((p) => [
    p.name,
    p.in,
    typeOf(p.schema),
    p.required ? "required" : "",
  ]);
  if (parameters.length) {
    card.append(element("h3", "Parameters"), table(["name", "in", "type", ""], parameters));
  }
  const content = spec.requestBody?.content || {};
  const kinds = Object.keys(content);
  if (kinds.length) {
    card.append(element("h3", "Body"), element("p", kinds.join(", "), "hint"));
    const schema = content[kinds[0]].schema || {};
    card.append(schema.properties ? table(["field", "type", ""], properties(schema)) : element("p", typeOf(schema)));
  }
  const answers = Object.entries(spec.responses || {}).map(([code, answer]) => {
    const types = Object.entries(answer.content || {}).map(([kind, body]) =>
      body.schema && Object.keys(body.schema).length ? `${kind}: ${typeOf(body.schema)}` : kind,
    );
    return [code, answer.description || "", types.join("; ")];
  });
  if (answers.length) card.append(element("h3", "Answers"), table(["status", "meaning", "body"], answers));
  return card;
}

function schema(name, spec) {
  const part = element("div");
  part.id = `schema-${name}`;
  part.append(element("h3", name));
  if (spec.description) part.append(element("p", spec.description, "hint"));
  part.append(spec.properties ? table(["field", "type", ""], properties(spec)) : element("p", typeOf(spec)));
  return part;
}

async function load() {
  let api;
  try {
    const response = await fetch("openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    api = await response.json();
  } catch (error) {
    $("docs-state").textContent = `The API description could not be loaded (${error.message}).`;
    return;
  }
  document.title = `${api.info?.title || "API"}: API reference`;
  const cards = [];
  for (const [path, item] of Object.entries(api.paths || {})) {
    for (const method of METHODS) if (item[method]) cards.push(operation(path, method, item[method]));
  }
  $("operations").replaceChildren(...cards);
  const schemas = Object.entries(api.components?.schemas || {});
  $("schema-list").replaceChildren(...schemas.map(([name, spec]) => schema(name, spec)));
  $("schemas").hidden = schemas.length === 0;
  $("docs-state").textContent = api.info?.description || "";
  $("docs-state").hidden = !api.info?.description;
}

load();
