// The campaigns list of the placeholder page: a served file, since the Content-Security-Policy
// (server.py) runs no inline script.
fetch('/api/campaigns').then(r => r.json()).then(({items}) => {
  const list = document.getElementById('campaigns');
  for (const c of items) {
    const li = document.createElement('li');
    li.textContent = `${c.name} (${c.status})`;  // user text as text, never as HTML
    list.appendChild(li);
  }
});
