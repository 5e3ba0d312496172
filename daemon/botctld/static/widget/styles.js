  // ---------------------------------------------------------------------------------------------
  // Styles: one constructed stylesheet adopted by the shadow root (CSP-exempt, fully isolated).

  var CSS = [
    // The accent: the site's own stylesheet (--botctl-accent) wins, then the workspace's (widget-config).
    ":host{all:initial;--accent:var(--botctl-accent,var(--botctl-config-accent,#1d4ed8));",
    "--accent-ink:var(--botctl-accent-ink,var(--botctl-config-accent-ink,#fff));--link:var(--accent);",
    "--ink:#1f2430;--muted:#5b6270;--line:#e3e6ec;--bg:#fff;--soft:#f4f6f9;--err:#b42318;--err-bg:#fef3f2;",
    "--err-line:#fecdca;--field:#c4cad4;color-scheme:light;",
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:var(--ink)}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    "button,input,select,textarea{font:inherit;color:inherit}",
    ".sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}",
    ":focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    "svg{width:24px;height:24px;fill:currentColor;flex:none}",

    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;",
    "border:0;background:var(--accent);color:var(--accent-ink);display:flex;align-items:center;justify-content:center;",
    "cursor:pointer;box-shadow:0 6px 20px rgba(16,24,40,.28)}",
    ".launcher:hover{filter:brightness(1.08)}",
    ".launcher:focus-visible{outline-color:var(--ink);outline-offset:3px}",
    ".launcher[aria-expanded=true] .i-open,.launcher[aria-expanded=false] .i-close{display:none}",
    ".launcher .badge{position:absolute;top:2px;right:2px;width:14px;height:14px;border-radius:50%;background:#f79009;border:2px solid #fff}",

    ".panel{position:fixed;right:20px;bottom:92px;z-index:2147483000;width:390px;height:min(640px,calc(100vh - 120px));",
    "display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--line);border-radius:16px;",
    "box-shadow:0 16px 48px rgba(16,24,40,.22);overflow:hidden}",
    ".head{display:flex;align-items:center;gap:10px;padding:12px 12px 12px 16px;background:var(--accent);color:var(--accent-ink)}",
    ".head .titles{flex:1;min-width:0}",
    ".head h2{margin:0;font-size:16px;font-weight:650;line-height:1.25;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".head .who{margin:2px 0 0;font-size:12.5px;opacity:.9;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".icon-btn{border:0;background:transparent;color:inherit;width:40px;height:40px;border-radius:10px;display:flex;",
    "align-items:center;justify-content:center;cursor:pointer}",
    ".icon-btn:hover{background:rgba(255,255,255,.16)}",
    ".head .icon-btn:focus-visible{outline-color:var(--accent-ink)}",

    ".log{flex:1;overflow-y:auto;padding:14px 14px 6px;display:flex;flex-direction:column;gap:10px;background:var(--soft);overscroll-behavior:contain}",
    ".msg{max-width:88%;padding:9px 12px;border-radius:14px;background:var(--bg);border:1px solid var(--line);overflow-wrap:anywhere}",
    ".msg p{margin:0}.msg p+p{margin-top:8px}",
    ".msg.me{align-self:flex-end;background:var(--accent);color:var(--accent-ink);border-color:transparent;border-bottom-right-radius:4px}",
    ".msg.bot{align-self:flex-start;border-bottom-left-radius:4px}",
    ".msg.err{align-self:flex-start;background:var(--err-bg);border-color:var(--err-line);color:var(--err)}",
    ".msg ul,.msg ol{margin:6px 0 0;padding-left:20px}.msg li+li{margin-top:2px}.msg p+ul,.msg p+ol{margin-top:4px}",
    ".msg strong{font-weight:650}",
    ".head .logo{width:32px;height:32px;border-radius:8px;object-fit:contain;background:#fff;flex:none}",
    ".rate{display:flex;align-items:center;gap:4px;margin-top:8px;font-size:12.5px;color:var(--muted)}",
    ".rate .lbl{margin-right:2px}",
    ".rate button{border:1px solid var(--line);background:var(--bg);color:var(--muted);border-radius:8px;width:30px;height:28px;",
    "display:flex;align-items:center;justify-content:center;cursor:pointer;padding:0}",
    ".rate button svg{width:16px;height:16px}",
    ".rate button:hover{color:var(--ink);border-color:var(--muted)}",
    ".rate button[aria-pressed=true]{background:var(--accent);border-color:var(--accent);color:var(--accent-ink)}",
    ".rate button[disabled]{cursor:default}",
    ".rate .thanks{margin-left:4px}",
    ".sheet details{margin:0 0 10px;font-size:13px}.sheet summary{cursor:pointer;color:var(--muted)}",
    ".preview{white-space:pre-wrap;max-height:160px;overflow:auto;margin:6px 0 0;padding:8px;border-radius:8px;background:var(--soft);font-size:12.5px}",
    ".msg.typing{color:var(--muted);font-style:italic}",
    ".ref{display:block;margin-top:4px;font-size:11.5px;color:var(--muted)}",
    ".sources{margin-top:8px;padding-top:8px;border-top:1px solid var(--line);font-size:13px}",
    ".sources h3,.result h3{margin:0 0 4px;font-size:12px;font-weight:650;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}",
    ".sources ul,.result ul{margin:0;padding:0;list-style:none}",
    ".sources li+li{margin-top:2px}",
    ".sources summary{cursor:pointer;color:var(--ink)}",
    ".sources blockquote{margin:4px 0 6px;padding-left:8px;border-left:3px solid var(--line);color:var(--muted)}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}",
    ".chip{border:1px solid var(--accent);color:var(--accent);background:var(--bg);border-radius:999px;padding:5px 11px;",
    "cursor:pointer;font-size:13.5px;text-align:left}",
    ".chip:hover{background:var(--soft)}",
    ".chip.locked{border-style:dashed;color:var(--muted);border-color:var(--field)}",
    ".chip small{display:block;font-size:11.5px;color:var(--muted)}",
    ".result{font-size:14px;min-width:220px}",
    ".result li{padding:7px 0;border-top:1px solid var(--line)}",
    ".result li:first-child{border-top:0;padding-top:2px}",
    ".result .t{font-weight:600}",
    ".result .f{display:block;color:var(--muted);font-size:13px}",
    ".result .sub{margin:4px 0 0 10px;font-size:13px;color:var(--muted)}",
    ".result .sub li{padding:1px 0;border:0}",
    ".result dl{margin:6px 0 0;display:grid;grid-template-columns:auto 1fr;gap:2px 10px;font-size:13px}",
    ".result dt{color:var(--muted)}.result dd{margin:0}",
    ".note{font-size:12.5px;color:var(--muted);margin-top:6px}",
    "a{color:var(--link)}.msg.me a{color:inherit}",

    ".sheet{border-top:1px solid var(--line);background:var(--bg);padding:12px 14px 0;max-height:75%;overflow-y:auto;flex:0 1 auto}",
    ".tray{padding-bottom:12px}",
    ".log{min-height:96px}",
    ".sheet h3{margin:0 0 2px;font-size:15px}",
    ".sheet .desc{margin:0 0 10px;font-size:13px;color:var(--muted)}",
    ".tray ul{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:6px}",
    ".act{width:100%;height:100%;text-align:left;border:1px solid var(--line);background:var(--bg);border-radius:10px;padding:6px 9px;cursor:pointer;font-size:14px;line-height:1.3}",
    ".act:hover{border-color:var(--accent)}",
    ".act small{display:block;font-size:12px;color:var(--muted)}",
    ".act small.lock{color:var(--err)}",
    ".field{margin-bottom:10px}",
    ".field label{display:block;font-size:13px;font-weight:600;margin-bottom:3px}",
    ".field .req{color:var(--err);font-weight:400}",
    ".field .hint{display:block;font-size:12px;color:var(--muted);margin-bottom:3px;font-weight:400}",
    ".field input[type=text],.field input[type=number],.field input[type=date],.field input[type=datetime-local],",
    ".field select,.field textarea{width:100%;padding:7px 9px;border:1px solid var(--field);border-radius:8px;background:var(--bg)}",
    ".field textarea{min-height:72px;resize:vertical}",
    ".field.check label{display:flex;gap:8px;align-items:center;font-weight:500}",
    ".field [aria-invalid=true]{border-color:var(--err)}",
    ".field .error,.form-error{color:var(--err);font-size:12.5px;margin:3px 0 0}",
    ".row{display:flex;gap:8px;justify-content:flex-end;position:sticky;bottom:0;padding:8px 0 12px;background:var(--bg)}",
    ".btn{border:1px solid var(--line);background:var(--bg);border-radius:9px;padding:7px 14px;cursor:pointer}",
    ".btn.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-ink);font-weight:600}",
    ".btn[disabled]{opacity:.6;cursor:progress}",

    ".composer{display:flex;gap:6px;align-items:center;padding:10px;border-top:1px solid var(--line);background:var(--bg)}",
    ".composer input{flex:1;min-width:0;padding:9px 12px;border:1px solid var(--field);border-radius:999px;background:var(--bg)}",
    ".composer .icon-btn{color:var(--accent)}",
    ".composer .icon-btn:hover{background:var(--soft)}",
    ".composer .icon-btn[aria-expanded=true]{background:var(--soft)}",
    ".composer [disabled]{opacity:.5;cursor:not-allowed}",
    ".foot{margin:0;padding:0 12px 8px;font-size:11px;color:var(--muted);text-align:center;background:var(--bg)}",

    // Dark mode follows the visitor's system setting.
    "@media (prefers-color-scheme:dark){:host{--ink:#e6e8ee;--muted:#a5adbb;--line:#343a46;--bg:#181b21;",
    "--soft:#20242c;--err:#ffb4ab;--err-bg:#3b1d1b;--err-line:#6b2c26;--field:#4b5261;--link:#9ecbff;color-scheme:dark}",
    ".launcher .badge{border-color:#181b21}.panel{box-shadow:0 16px 48px rgba(0,0,0,.55)}}",
    "@media (max-width:480px){",
    ".panel{inset:0;right:0;bottom:0;width:100%;height:100%;height:100dvh;border-radius:0;border:0}",
    ".launcher[aria-expanded=true]{display:none}",
    ".msg{max-width:94%}",
    "}",
    "@media (prefers-reduced-motion:no-preference){.panel{animation:botctl-in .16s ease-out}}",
    "@keyframes botctl-in{from{opacity:0;transform:translateY(8px)}to{opacity:1;transform:none}}"
  ].join("\n");

  function adoptStyles(root, extra) {
    var css = extra ? [CSS, extra] : [CSS];
    try {
      root.adoptedStyleSheets = css.map(function (text) {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(text);
        return sheet;
      });
    } catch (e) {
      // Browsers without constructable stylesheets: a <style> in the shadow root (needs style-src to allow it).
      Array.prototype.forEach.call(root.querySelectorAll("style"), function (s) { s.remove(); });
      css.forEach(function (text) {
        var style = document.createElement("style");
        style.textContent = text;
        root.insertBefore(style, root.firstChild);
      });
    }
  }

  // The workspace's accent (widget-config), checked here again: only a hex colour reaches the stylesheet.
  var HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

  function accentCss(value) {
    if (typeof value !== "string" || !HEX.test(value)) { return null; }
    var hex = value.length === 4 ? "#" + value[1] + value[1] + value[2] + value[2] + value[3] + value[3] : value;
    var rgb = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var light = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] > 0.4; // dark text on a light accent
    return ":host{--botctl-config-accent:" + hex.toLowerCase() + ";--botctl-config-accent-ink:" + (light ? "#111" : "#fff") + "}";
  }

