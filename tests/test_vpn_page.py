"""pages/vpn.py in Streamlit's AppTest, logged in the way pages/_ui.py reads it,
for an admin, an analyst and a viewer. Downloads and QR images are read back
from Streamlit's media store and checked like any other config."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from hivemind_core import auth
from hivemind_core.principal import Principal
from hivemind_core.vpn import service
from tests.app_login import logged_in
from tests.vpn_wg import strict_parse, wg_check, wg_pubkey

PASSWORD = "a long enough passphrase 42"
ADMIN = Principal("root", "admin")


class _Recorder(MemoryMediaFileStorage):
    instances: list["_Recorder"] = []

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        _Recorder.instances.append(self)


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch):
    """Keep AppTest's in-memory media store, to read what a download button or image serves."""
    import streamlit.testing.v1.app_test as app_test

    _Recorder.instances = []
    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", _Recorder)

    def content(url: str) -> bytes:
        return _Recorder.instances[-1].get_file(url.rsplit("/", 1)[-1]).content

    return content


@pytest.fixture
def users() -> None:
    auth.create_first_admin("root", PASSWORD)
    auth.create_user(ADMIN, "alice", PASSWORD, "analyst")
    auth.create_user(ADMIN, "bob", PASSWORD, "analyst")
    auth.create_user(ADMIN, "vera", PASSWORD, "viewer")


def page(username: str, repo_root: Path) -> AppTest:
    at = AppTest.from_file(str(repo_root / "pages" / "vpn.py"), default_timeout=60)
    return logged_in(at, username).run()


def downloads(at: AppTest) -> dict[str, str]:
    return {b.key: b.proto.url for b in at.get("download_button")}


def decode_qr(png: bytes) -> str:
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return result.bytes.decode("utf-8")


def test_admin_configures_adds_and_downloads(users: None, media, repo_root: Path, tmp_path: Path) -> None:  # noqa: ANN001
    at = page("root", repo_root)
    assert not at.exception
    assert "No peers yet" in at.info[0].value
    assert "vpn_dl_server" in downloads(at)
    assert any(c.value == "wg syncconf wg0 <(wg-quick strip wg0)" for c in at.code)

    # server settings through the form
    at.text_input(key="vpn_set_endpoint").set_value("2001:db8::7")
    at.text_input(key="vpn_set_subnet").set_value("10.66.0.0/24")
    at.text_input(key="vpn_set_dns").set_value("10.66.0.1")
    at.button(key="FormSubmitter:vpn_settings-Save settings").click().run()
    assert not at.exception and at.success, [e.value for e in at.error]
    view = service.get_server_settings(ADMIN)
    assert (view.endpoint, view.subnet, view.dns) == ("2001:db8::7", "10.66.0.0/24", "10.66.0.1")
    assert view.web_port_source == "app"  # saving the shown web port does not pin it: it follows the app

    # a bad value is shown next to its field, nothing saved
    at.text_input(key="vpn_set_subnet").set_value("10.66.0.0/31")
    at.button(key="FormSubmitter:vpn_settings-Save settings").click().run()
    assert any("too small" in e.value for e in at.error)
    assert service.get_server_settings(ADMIN).subnet == "10.66.0.0/24"

    # add a worker peer with generated keys and a preshared key
    at.text_input(key="vpn_add_name").set_value("worker 1")
    at.radio(key="vpn_add_kind").set_value("worker")
    at.checkbox(key="vpn_add_psk").check()
    at.text_input(key="vpn_add_owner").set_value("nosuchuser")  # the page checks owners like the CLI
    at.button(key="vpn_add").click().run()
    assert any("no user 'nosuchuser'" in e.value for e in at.error) and service.list_peers(ADMIN) == []
    at.text_input(key="vpn_add_owner").set_value("bob")
    at.button(key="vpn_add").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    peer = service.find_peer(ADMIN, "worker 1")
    assert (peer.owner, peer.kind, peer.addresses, peer.has_preshared_key) == ("bob", "worker", ("10.66.0.2",), True)
    assert at.text_input(key="vpn_add_name").value == ""  # the next peer starts from an empty name

    # the shown-once config: download and QR hold the same complete config
    config = media(downloads(at)["dl_new"]).decode()
    parsed = strict_parse(config, client=True)
    assert wg_pubkey(parsed["interface"]["privatekey"]) == peer.public_key
    assert parsed["peers"][0]["endpoint"] == "[2001:db8::7]:51820"
    wg_check(config, tmp_path)
    (qr_image,) = at.get("image")
    assert decode_qr(media(qr_image.value[0])) == config

    # the server config download lists the peer
    server_text = media(downloads(at)["vpn_dl_server"]).decode()
    assert peer.public_key in server_text and "--dport 50051" in server_text
    wg_check(server_text, tmp_path / "server")

    # hide it; disable the peer; it leaves wg0.conf but keeps its address
    at.button(key="vpn_hide_new").click().run()
    assert "dl_new" not in downloads(at)
    at.button(key=f"vpn_toggle_{peer.id}").click().run()
    assert not service.find_peer(ADMIN, "worker 1").enabled
    assert peer.public_key not in service.server_config(ADMIN)
    assert service.find_peer(ADMIN, "worker 1").addresses == ("10.66.0.2",)


def test_analyst_sees_only_own_peers_and_no_server_parts(users: None, media, repo_root: Path) -> None:  # noqa: ANN001
    service.update_server_settings(ADMIN, endpoint="vpn.example.org")
    alice = Principal("alice", "analyst")
    own = service.add_peer(alice, "alice laptop").peer
    other = service.add_peer(Principal("bob", "analyst"), "bob laptop").peer

    at = page("alice", repo_root)
    assert not at.exception
    assert at.subheader[0].value == "Your peers"
    table = at.dataframe[0].value
    assert list(table["name"]) == ["alice laptop"]
    assert at.selectbox(key="vpn_peer_choice").options == [f"alice laptop (alice, {own.addresses[0]})"]
    keys = downloads(at)
    assert set(keys) == {f"dl_peer_{own.id}"}  # no wg0.conf, no other peer's config
    text = media(keys[f"dl_peer_{own.id}"]).decode()
    assert own.public_key in text and other.public_key not in text and own.addresses[0] in text
    assert not any(t.key == "vpn_set_endpoint" for t in at.text_input)
    assert not any("wg syncconf" in c.value for c in at.code)
    assert not any(r.key == "vpn_add_kind" for r in at.radio)  # only admins choose worker peers

    # bring your own key through the page
    from tests.vpn_wg import wg_genkey
    private = wg_genkey()
    at.text_input(key="vpn_add_name").set_value("alice desktop")
    at.radio(key="vpn_add_mode").set_value("I bring my own key").run()
    at.text_input(key="vpn_add_pubkey").set_value(wg_pubkey(private))
    at.button(key="vpn_add").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.text_input(key="vpn_add_name").value == "" and at.text_input(key="vpn_add_pubkey").value == ""
    new = media(downloads(at)["dl_new"]).decode()
    assert "PrivateKey = REPLACE_WITH_YOUR_PRIVATE_KEY" in new
    strict_parse(new.replace("REPLACE_WITH_YOUR_PRIVATE_KEY", private), client=True)
    assert not at.get("image")  # a placeholder config gets no QR code
    assert [p.name for p in service.list_peers(alice)] == ["alice laptop", "alice desktop"]

    # revoke own peer (needs the confirmation)
    at.checkbox(key=f"vpn_revoke_sure_{own.id}").check().run()
    at.button(key=f"vpn_revoke_{own.id}").click().run()
    assert [p.name for p in service.list_peers(alice)] == ["alice desktop"]
    assert [p.name for p in service.list_peers(ADMIN)] == ["bob laptop", "alice desktop"]


def test_viewer_cannot_open_the_page(users: None, repo_root: Path) -> None:
    at = page("vera", repo_root)
    assert [e.value for e in at.error] == ["Your role (viewer) cannot open this page; ask an administrator for the "
                                           "analyst role."]
    assert not at.get("download_button") and not at.button


def all_texts(at: AppTest) -> list[str]:
    return [str(e.value) for kind in ("markdown", "caption", "info", "error", "warning", "success")
            for e in getattr(at, kind)]


def test_settings_summary_mtu_and_downloads_say_what_they_are(users: None, media, repo_root: Path) -> None:  # noqa: ANN001
    at = page("root", repo_root)
    assert not at.exception
    # the summary under the form follows a save at once, with the right plural
    at.text_input(key="vpn_set_endpoint").set_value("vpn.example.org")
    at.text_input(key="vpn_set_subnet").set_value("10.9.0.0/30")
    at.button(key="FormSubmitter:vpn_settings-Save settings").click().run()
    assert not at.exception and at.success, [e.value for e in at.error]
    summary = next(t for t in all_texts(at) if t.startswith("Server address"))
    assert summary.startswith("Server address 10.9.0.1 · room for 1 peer, 0 active"), summary

    # the MTU field says 0 = automatic, and so does its error
    assert at.number_input(key="vpn_set_mtu").label == "MTU (0 = automatic)"
    at.number_input(key="vpn_set_mtu").set_value(10)
    at.button(key="FormSubmitter:vpn_settings-Save settings").click().run()
    (error,) = [e.value for e in at.error]
    assert "got 10; use 0 for WireGuard's automatic choice" in error and "empty" not in error

    # the peer list's download without the private key is not named like the one-time config
    at.number_input(key="vpn_set_mtu").set_value(0)
    at.text_input(key="vpn_set_subnet").set_value("10.9.0.0/24")
    at.button(key="FormSubmitter:vpn_settings-Save settings").click().run()
    at.text_input(key="vpn_add_name").set_value("alice-laptop")
    at.text_input(key="vpn_add_owner").set_value("alice")
    at.button(key="vpn_add").click().run()
    assert not at.error, [e.value for e in at.error]
    peer = service.find_peer(ADMIN, "alice-laptop")
    buttons = {b.key: b for b in at.get("download_button")}
    once, again = buttons["dl_new"], buttons[f"dl_peer_{peer.id}"]
    assert once.proto.label == "Download alice-laptop.conf"
    assert again.proto.label == "Download the config without the private key"
    store = _Recorder.instances[-1]
    file_of = {key: store.get_file(b.proto.url.rsplit("/", 1)[-1]) for key, b in (("once", once), ("again", again))}
    assert file_of["once"].filename == "alice-laptop.conf" and file_of["again"].filename == "alice-laptop-template.conf"
    assert "REPLACE_WITH_YOUR_PRIVATE_KEY" in file_of["again"].content.decode()
    assert any("alice-laptop-template.conf" in t and "save it as alice-laptop.conf" in t for t in all_texts(at))


def test_live_status_is_worded_for_people_and_the_detail_is_for_admins(users: None, repo_root: Path) -> None:
    import shutil

    service.update_server_settings(ADMIN, endpoint="vpn.example.org")
    service.add_peer(Principal("alice", "analyst"), "alice laptop")
    status = service.peer_status(ADMIN)
    if status.available:
        pytest.skip("a WireGuard interface wg0 is up on this machine")
    if shutil.which("wg"):   # installed (scripts/test.sh), and the test machine has no wg0
        assert status.summary == ("Live status (handshakes, transfer) is unavailable: the WireGuard interface wg0 "
                                  "is not up on this server.")
    analyst = page("alice", repo_root)
    assert status.summary in [i.value for i in analyst.info]
    assert not [t for t in all_texts(analyst) if "wg show" in t or "failed" in t]
    admin = page("root", repo_root)
    assert status.summary in [i.value for i in admin.info]
    assert f"Details: {status.reason}" in [c.value for c in admin.caption]
