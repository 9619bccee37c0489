// Shared by the pages: sign in over the JSON API, with the TOTP step when 2FA is on.
async function api(path, body, token) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, {method: "POST", headers, body: JSON.stringify(body || {})});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.detail || ("HTTP " + response.status));
  return data;
}

async function signIn(form) {
  const email = form.email.value, password = form.password.value;
  let session = await api("/api/v1/sessions", {email, password});
  if (session.totp_required) {
    const code = window.prompt("Two-factor code (or a backup code)");
    if (!code) throw new Error("A code is needed to finish signing in");
    session = await api("/api/v1/sessions/2fa", {totp_token: session.totp_token, code});
  }
  return session.access_token;
}

function show(id, text, isError) {
  const element = document.getElementById(id);
  element.textContent = text;
  element.className = isError ? "error" : "ok";
}
