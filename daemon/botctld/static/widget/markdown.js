  // ---------------------------------------------------------------------------------------------
  // Answers: a safe Markdown subset, built with DOM calls (never HTML, so Trusted Types has nothing to
  // refuse): paragraphs (blank lines), bulleted ("- ", "* ", "+ ") and numbered ("1. ") lists, bold
  // (**…** or __…__), links ([text](url) and bare URLs). A link is made only to an absolute http(s) URL,
  // opened in a new tab with rel="noopener noreferrer"; any other scheme (javascript:, data:, …) leaves
  // just its text. Everything else, markup included, is text exactly as written.

  // A link's URL may hold one level of parentheses (Wikipedia-style, or `javascript:alert(1)`, which is
  // then recognised as a link, and dropped as one).
  var MD_INLINE = "\\*\\*([^*\\n]+?)\\*\\*|__([^_\\n]+?)__|\\[([^\\]\\n]{1,300})\\]\\(\\s*((?:[^()\\s]|\\([^()\\s]*\\)){1,2000})\\s*\\)" +
    "|(https?:\\/\\/[^\\s<>()\"'\\]\\[]*[^\\s<>()\"'\\]\\[.,;:!?])";
  var MD_ITEM = /^\s{0,3}(?:([-*+])|(\d{1,3})[.)])\s+(\S.*)$/;

  function httpUrl(value) {
    try {
      var u = new URL(value); // absolute only: a relative link would resolve against the host page
      return (u.protocol === "https:" || u.protocol === "http:") && u.hostname ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function mdLink(text, href) {
    var url = httpUrl(href);
    if (!url) { return document.createTextNode(text); }
    return h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: text });
  }

  function mdInline(parent, text, inBold) {
    var re = new RegExp(MD_INLINE, "g");
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) { parent.appendChild(document.createTextNode(text.slice(last, m.index))); }
      var bold = m[1] || m[2];
      if (bold && !inBold) {
        var strong = h("strong");
        mdInline(strong, bold, true);
        parent.appendChild(strong);
      } else if (bold) {
        parent.appendChild(document.createTextNode(bold));
      } else if (m[3] !== undefined) {
        parent.appendChild(mdLink(m[3], m[4]));
      } else {
        parent.appendChild(mdLink(m[5], m[5]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) { parent.appendChild(document.createTextNode(text.slice(last))); }
    return parent;
  }

  // The nodes of `text` rendered: <p>, <ul>, <ol> elements.
  function renderMarkdown(text) {
    var out = [];
    String(text || "").replace(/\r\n?/g, "\n").split(/\n[ \t]*\n/).forEach(function (block) {
      var para = [];
      var list = null;
      function flush() {
        if (para.length) { out.push(mdInline(h("p"), para.join(" "))); para = []; }
      }
      block.split("\n").forEach(function (line) {
        var item = MD_ITEM.exec(line);
        if (item) {
          flush();
          var tag = item[1] ? "ul" : "ol";
          if (!list || list.tagName.toLowerCase() !== tag) { list = h(tag); out.push(list); }
          list.appendChild(mdInline(h("li"), item[3].trim()));
        } else if (line.trim()) {
          if (list && /^\s{2,}\S/.test(line)) { // a continued list item
            var li = list.lastChild;
            li.appendChild(document.createTextNode(" "));
            mdInline(li, line.trim());
            return;
          }
          list = null;
          para.push(line.trim());
        }
      });
      flush();
    });
    return out;
  }
