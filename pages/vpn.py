"""VPN page: WireGuard peers with their configs and QR codes; admins also edit the
server settings and download ``wg0.conf``. UI only — every action is a call to
:mod:`hivemind_core.vpn.service` with the logged-in principal."""

from __future__ import annotations

import streamlit as st

from hivemind_core.errors import HiveMindError
from hivemind_core.principal import Principal
from hivemind_core.vpn import service
from hivemind_core.vpn.names import template_file_name
from hivemind_core.vpn.qr import qr_png
from hivemind_core.vpn.status import VpnStatus
from pages import _ui as ui

NEW_PEER_KEY = "vpn_new_peer"  # the config of a peer just created: shown until dismissed


def _peer_table(peers: list[service.PeerView], status: VpnStatus) -> None:
    rows = []
    for p in peers:
        live = status.peers.get(p.public_key)
        rows.append({
            "name": p.name, "owner": p.owner, "kind": p.kind, "addresses": ", ".join(p.addresses),
            "state": "enabled" if p.enabled else "disabled",
            "keys": "own key" if p.byok else ("generated, kept" if p.private_key_kept else "generated"),
            "preshared key": "yes" if p.has_preshared_key else "no",
            "tunnel": "full" if p.full_tunnel else "split",
            "created": ui.fmt_time(p.created_at),
            "last handshake": ui.fmt_time(live.latest_handshake) if live else "—",
            "received": ui.fmt_bytes(live.rx_bytes) if live else "—",
            "sent": ui.fmt_bytes(live.tx_bytes) if live else "—",
        })
    st.dataframe(rows, hide_index=True, width="stretch")


def _show_config(text: str, file_name: str, complete: bool, key: str, label: str | None = None) -> None:
    st.download_button(label or f"Download {file_name}", text, file_name=file_name, mime="text/plain",
                       key=f"dl_{key}", icon=":material/download:")
    if complete:
        st.image(qr_png(text), caption="Scan with the WireGuard app (Android, iOS)", width=320)
    else:
        st.caption("This config has a placeholder for the private key, so there is no QR code to scan: "
                   "fill in the key in the file, then import it.")


def _new_peer_section() -> None:
    new = st.session_state.get(NEW_PEER_KEY)
    if not new:
        return
    with st.container(border=True):
        st.subheader(f"Config for {new['name']}")
        if new["complete"]:
            st.warning("This config holds the peer's private key and is shown only now — download it or "
                       "scan the QR code before leaving this page.")
        _show_config(new["config"], new["file_name"], new["complete"], "new")
        if st.button("Done, hide it", key="vpn_hide_new"):
            del st.session_state[NEW_PEER_KEY]
            st.rerun()


def _add_peer(who: Principal) -> None:
    st.subheader("Add a peer")
    name = st.text_input("Name", key="vpn_add_name", placeholder="e.g. alice-laptop")
    owner, kind, keep = None, "user", False
    if who.is_admin:
        owner = st.text_input("Owner (user name)", value=who.username, key="vpn_add_owner")
        kind = st.radio("Kind", ["user", "worker"], horizontal=True, key="vpn_add_kind",
                        help="user: may reach the web app; worker: may reach the node pool")
    mode = st.radio("Keys", ["Generate a key pair for me", "I bring my own key"], horizontal=True,
                    key="vpn_add_mode")
    public_key = None
    if mode == "I bring my own key":
        public_key = st.text_input("Your public key (`wg genkey | tee private.key | wg pubkey`)",
                                   key="vpn_add_pubkey")
    elif who.is_admin:
        keep = st.checkbox("Keep the private key (encrypted) so the config can be downloaded again",
                           key="vpn_add_keep")
    psk = st.checkbox("Add a preshared key", key="vpn_add_psk")
    full = st.checkbox("Full tunnel: send all traffic through the VPN (default: only the VPN network)",
                       key="vpn_add_full")
    if st.button("Add peer", key="vpn_add", type="primary"):
        try:
            new = service.add_peer(who, name, owner=owner, kind=kind, public_key=public_key,
                                   preshared_key=psk, full_tunnel=full, keep_private_key=keep)
        except HiveMindError as exc:
            st.error(str(exc))
            return
        st.session_state[NEW_PEER_KEY] = {"name": new.peer.name, "config": new.config,
                                          "file_name": new.file_name, "complete": new.private_key_included}
        for key in ("vpn_add_name", "vpn_add_pubkey"):  # the next peer starts from an empty form
            st.session_state.pop(key, None)
        st.rerun()


def _peer_actions(who: Principal, peers: list[service.PeerView]) -> None:
    labels = {f"{p.name} ({p.owner}, {', '.join(p.addresses)})": p for p in peers}
    choice = st.selectbox("Peer", list(labels), key="vpn_peer_choice")
    peer = labels[choice]
    with ui.user_errors():
        text, file_name = service.client_config(who, peer.id)
        complete = peer.private_key_kept
        label = None
        if not complete:   # not the config shown once at creation: say so in its label and file name
            label, template = "Download the config without the private key", template_file_name(file_name)
            st.caption(f"The private key is not stored on the server (shown once at creation"
                       f"{'' if not peer.byok else ', or never: it is your own key'}), so this download "
                       f"({ui.plain(template)}) is a template with a marked placeholder for it: put the "
                       f"key in and save it as {ui.plain(file_name)} before importing it (the file name "
                       "names the tunnel).")
            file_name = template
        _show_config(text, file_name, complete, f"peer_{peer.id}", label)
    cols = st.columns(3)
    with cols[0]:
        new_name = st.text_input("New name", value=peer.name, key=f"vpn_rename_{peer.id}")
        if st.button("Rename", key=f"vpn_rename_btn_{peer.id}") and new_name != peer.name:
            with ui.user_errors():
                service.rename_peer(who, peer.id, new_name)
                st.rerun()
    with cols[1]:
        if who.is_admin:
            label = "Disable" if peer.enabled else "Enable"
            if st.button(label, key=f"vpn_toggle_{peer.id}"):
                with ui.user_errors():
                    service.set_peer_enabled(who, peer.id, not peer.enabled)
                    st.rerun()
    with cols[2]:
        sure = st.checkbox("Yes, revoke it", key=f"vpn_revoke_sure_{peer.id}")
        if st.button("Revoke", key=f"vpn_revoke_{peer.id}", disabled=not sure, type="primary"):
            with ui.user_errors():
                service.revoke_peer(who, peer.id)
                st.rerun()


def _server_settings(who: Principal) -> None:
    st.subheader("Server settings")
    view = service.get_server_settings(who)
    with st.form("vpn_settings"):
        endpoint = st.text_input("Endpoint (public IPv4, IPv6 or DNS name)",
                                 value=view.endpoint or "", key="vpn_set_endpoint")
        port = st.number_input("UDP port", 1, 65535, view.port, key="vpn_set_port")
        subnet = st.text_input("VPN subnet (IPv4)", view.subnet, key="vpn_set_subnet")
        subnet_v6 = st.text_input("IPv6 subnet (optional)", view.subnet_v6 or "", key="vpn_set_subnet_v6")
        dns = st.text_input("DNS servers for clients (optional, comma-separated)", view.dns, key="vpn_set_dns")
        mtu = st.number_input("MTU (0 = automatic)", 0, 65535, view.mtu or 0, key="vpn_set_mtu")
        keepalive = st.number_input("PersistentKeepalive seconds (0 = off)", 0, 65535, view.keepalive,
                                    key="vpn_set_keepalive")
        node_pool_port = st.number_input("Node pool port (worker peers)", 1, 65535, view.node_pool_port,
                                         key="vpn_set_pool_port")
        web_port = st.number_input("Web app port (user peers)", 1, 65535, view.web_port, key="vpn_set_web_port")
        errors = ui.FieldErrors()
        if st.form_submit_button("Save settings"):
            try:
                service.update_server_settings(
                    who, endpoint=endpoint, port=int(port), subnet=subnet, subnet_v6=subnet_v6, dns=dns,
                    mtu=int(mtu), keepalive=int(keepalive), node_pool_port=int(node_pool_port),
                    web_port=int(web_port))
            except HiveMindError as exc:
                errors.show(exc)
            else:
                st.success("Saved. Peers' client configs change with these settings: they download them again.")
                view = service.get_server_settings(who)   # the summary below shows what was saved
    st.caption(f"Server address {view.server_address}"
               + (f" and {view.server_address_v6}" if view.server_address_v6 else "")
               + f" · room for {ui.plural(view.capacity, 'peer')}, {view.peers_active} active · "
               f"server public key `{view.server_public_key}`")

    st.subheader("Server config")
    st.download_button("Download wg0.conf", service.server_config(who), file_name="wg0.conf",
                       mime="text/plain", key="vpn_dl_server", icon=":material/download:")
    st.markdown("Put it at `/etc/wireguard/wg0.conf` (mode 0600) on the VPN server and apply peer changes "
                "without dropping tunnels:")
    st.code(service.APPLY_COMMAND, language="bash")
    st.caption("The firewall rules (PostUp) list each peer's address; after adding or revoking peers, "
               "reload them with `wg-quick down wg0 && wg-quick up wg0`.")


def render(who: Principal) -> None:
    st.title("VPN")
    st.caption("WireGuard configs that put your machines on the cluster's private network.")
    _new_peer_section()
    peers = service.list_peers(who)
    status = service.peer_status(who)
    st.subheader("All peers" if who.is_admin else "Your peers")
    if peers:
        _peer_table(peers, status)
        if not status.available:
            st.info(status.summary)
            if who.is_admin:
                st.caption(f"Details: {status.reason}")
        _peer_actions(who, peers)
    else:
        st.info("No peers yet — add one below.")
    _add_peer(who)
    if who.is_admin:
        with ui.user_errors():
            _server_settings(who)


render(ui.require_page("vpn"))
