  // ---------------------------------------------------------------------------------------------
  // Forms from JSON Schema: string (text, textarea, date, date-time, enum), integer, number, boolean.

  var uid = 0;
  function nextId(prefix) { uid += 1; return "botctl-" + prefix + "-" + uid; }

  function fieldsOf(schema) {
    var props = (schema && schema.properties) || {};
    var required = (schema && Array.isArray(schema.required)) ? schema.required : [];
    return Object.keys(props).map(function (key) {
      var s = props[key] || {};
      var type = Array.isArray(s.type) ? s.type.filter(function (t) { return t !== "null"; })[0] : s.type;
      if (!type && Array.isArray(s.enum)) { type = "string"; }
      return { key: key, schema: s, type: type, required: required.indexOf(key) >= 0 };
    }).filter(function (f) { return ["string", "integer", "number", "boolean"].indexOf(f.type) >= 0; });
  }

  function buildField(f) {
    var s = f.schema;
    var id = nextId("f");
    var errId = id + "-err";
    var hintId = id + "-hint";
    var hint = typeof s.description === "string" ? s.description : "";
    var input;
    if (f.type === "boolean") {
      input = h("input", { type: "checkbox", id: id, name: f.key });
      input.checked = s.default === true;
      var wrap = h("div", { class: "field check" }, h("label", { for: id }, input, fieldLabel(f.key)),
        hint ? h("span", { class: "hint", id: hintId, text: hint }) : null);
      if (hint) { input.setAttribute("aria-describedby", hintId); }
      return { field: f, input: input, el: wrap, error: null };
    }
    if (Array.isArray(s.enum)) {
      input = h("select", { id: id, name: f.key });
      if (!f.required || s.default === undefined) { input.appendChild(h("option", { value: "", text: f.required ? t("form.choose") : "—" })); }
      s.enum.forEach(function (v) { input.appendChild(h("option", { value: String(v), text: humanValue(v) })); });
      if (s.default !== undefined) { input.value = String(s.default); }
    } else if (f.type === "integer" || f.type === "number") {
      input = h("input", { type: "text", inputmode: f.type === "integer" ? "numeric" : "decimal", id: id, name: f.key, autocomplete: "off" });
      if (s.default !== undefined) { input.value = String(s.default); }
    } else if (s.format === "date") {
      input = h("input", { type: "date", id: id, name: f.key });
    } else if (s.format === "date-time") {
      input = h("input", { type: "datetime-local", id: id, name: f.key });
    } else if ((s.maxLength || 0) > 300 || /description|body|note|message|comment|reason/.test(f.key)) {
      input = h("textarea", { id: id, name: f.key, rows: 3, maxlength: s.maxLength || null });
    } else {
      input = h("input", { type: "text", id: id, name: f.key, maxlength: s.maxLength || null, autocomplete: "off" });
      if (typeof s.default === "string") { input.value = s.default; }
    }
    if (f.required) { input.setAttribute("aria-required", "true"); }
    var error = h("p", { class: "error", id: errId, hidden: true });
    var built = { field: f, input: input, el: null, error: error };
    // Once a field was flagged, re-check it as the visitor fixes it.
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", function () {
      if (input.getAttribute("aria-invalid") === "true") { showFieldError(built, readField(built)[1]); }
    });
    input.setAttribute("aria-describedby", (hint ? hintId + " " : "") + errId);
    var el = h("div", { class: "field" },
      h("label", { for: id }, fieldLabel(f.key), f.required ? h("span", { class: "req" }, t("form.required")) : null),
      hint ? h("span", { class: "hint", id: hintId, text: hint }) : null,
      input, error);
    built.el = el;
    return built;
  }

  function showFieldError(b, msg) {
    if (!b.error) { return; }
    b.error.hidden = !msg;
    b.error.textContent = msg || "";
    b.input.setAttribute("aria-invalid", msg ? "true" : "false");
  }

  // Mirrors the schema: returns [value or undefined (omit), error message or null].
  function readField(b) {
    var f = b.field;
    var s = f.schema;
    if (f.type === "boolean") { return [b.input.checked, null]; }
    var raw = String(b.input.value || "").trim();
    if (raw === "") { return [undefined, f.required ? t("field.required") : null]; }
    if (f.type === "integer" || f.type === "number") {
      var ok = f.type === "integer" ? /^-?\d+$/.test(raw) : /^-?\d+(\.\d+)?$/.test(raw);
      if (!ok) { return [undefined, f.type === "integer" ? t("field.whole") : t("field.number")]; }
      var n = Number(raw);
      if (typeof s.minimum === "number" && n < s.minimum) { return [undefined, t("field.min", { n: s.minimum })]; }
      if (typeof s.maximum === "number" && n > s.maximum) { return [undefined, t("field.max", { n: s.maximum })]; }
      return [n, null];
    }
    var value = raw;
    if (s.format === "date-time") {
      var d = new Date(raw);
      if (isNaN(d.getTime())) { return [undefined, t("field.datetime")]; }
      value = d.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    if (Array.isArray(s.enum) && s.enum.map(String).indexOf(value) < 0) { return [undefined, t("field.choice")]; }
    if (typeof s.minLength === "number" && value.length < s.minLength) { return [undefined, t("field.minLength", { n: s.minLength })]; }
    if (typeof s.maxLength === "number" && value.length > s.maxLength) { return [undefined, t("field.maxLength", { n: s.maxLength })]; }
    if (s.pattern) {
      var re = null;
      try { re = new RegExp(s.pattern, "u"); } catch (e) { re = null; }
      if (re && !re.test(value)) { return [undefined, t("field.pattern", { hint: s.description ? " (" + s.description + ")" : "" })]; }
    }
    return [value, null];
  }

