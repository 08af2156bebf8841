// The UI shows this page in a sandboxed frame that may not navigate the window itself: links
// marked target=_top are followed by a link created in the UI's own (same-origin) document.
document.addEventListener('click', function (ev) {
  var a = ev.target.closest('a[target="_top"]');
  if (!a || window.top === window) return;
  try {
    var doc = window.top.document, link = doc.createElement('a');
    link.href = a.href;
    doc.body.appendChild(link);
    link.click();
    link.remove();
    ev.preventDefault();
  } catch (e) { /* not same-origin: leave it to the browser */ }
});
