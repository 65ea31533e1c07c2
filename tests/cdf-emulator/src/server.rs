//! HTTP routing and the connection loop. Connections are served one task each with hyper
//! directly (not `axum::serve`) so a fault can close a connection without answering.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::config::EmulatorConfig;
use crate::control::Control;
use crate::faults::ConnKill;
use crate::instances;
use crate::schema::{containers, datamodels, spaces, views};
use crate::state::{AppState, Shared};
use crate::{auth, control, datasets, extpipes, faults, raw, request_log};

/// Largest accepted request body (after gzip inflation).
pub const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

fn project_routes() -> Router<AppState> {
    Router::new()
        .route("/models/spaces", post(spaces::apply).get(spaces::list))
        .route("/models/spaces/byids", post(spaces::by_ids))
        .route("/models/spaces/delete", post(spaces::delete))
        .route(
            "/models/containers",
            post(containers::apply).get(containers::list),
        )
        .route("/models/containers/byids", post(containers::by_ids))
        .route("/models/containers/delete", post(containers::delete))
        .route("/models/views", post(views::apply).get(views::list))
        .route("/models/views/byids", post(views::by_ids))
        .route("/models/views/delete", post(views::delete))
        .route(
            "/models/datamodels",
            post(datamodels::apply).get(datamodels::list),
        )
        .route("/models/datamodels/byids", post(datamodels::by_ids))
        .route("/models/datamodels/delete", post(datamodels::delete))
        .route("/models/instances", post(instances::apply_handler))
        .route("/models/instances/delete", post(instances::delete_handler))
        .route("/models/instances/sync", post(instances::sync_handler))
        .route("/models/instances/list", post(instances::list_handler))
        .route("/models/instances/byids", post(instances::by_ids_handler))
        .route(
            "/models/instances/aggregate",
            post(instances::aggregate_handler),
        )
        .route("/raw/dbs", get(raw::list_dbs).post(raw::create_dbs))
        .route("/raw/dbs/delete", post(raw::delete_dbs))
        .route(
            "/raw/dbs/{db}/tables",
            get(raw::list_tables).post(raw::create_tables),
        )
        .route("/raw/dbs/{db}/tables/delete", post(raw::delete_tables))
        .route(
            "/raw/dbs/{db}/tables/{table}/rows",
            get(raw::list_rows).post(raw::insert_rows),
        )
        .route(
            "/raw/dbs/{db}/tables/{table}/rows/delete",
            post(raw::delete_rows).get(raw::retrieve_row_named_delete),
        )
        .route(
            "/raw/dbs/{db}/tables/{table}/rows/{key}",
            get(raw::retrieve_row),
        )
        .route("/raw/dbs/{db}/tables/{table}/cursors", get(raw::cursors))
        .route("/datasets", post(datasets::create))
        .route("/datasets/byids", post(datasets::by_ids))
        .route("/datasets/list", post(datasets::list))
        .route(
            "/extpipes",
            post(extpipes::create_pipelines).get(extpipes::list_pipelines),
        )
        .route("/extpipes/byids", post(extpipes::pipelines_by_ids))
        .route("/extpipes/delete", post(extpipes::delete_pipelines))
        .route(
            "/extpipes/config",
            get(extpipes::get_config).post(extpipes::create_config),
        )
        .route(
            "/extpipes/config/revisions",
            get(extpipes::list_config_revisions),
        )
        .route("/extpipes/config/revert", post(extpipes::revert_config))
        .route(
            "/extpipes/runs",
            get(extpipes::list_runs).post(extpipes::create_runs),
        )
        .route("/extpipes/runs/list", post(extpipes::filter_runs))
}

/// The complete application: public API, token endpoint and control API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/oauth2/token", post(auth::token))
        .route(
            "/api/v1/token/inspect",
            get(auth::inspect).layer(from_fn_with_state(state.clone(), auth::require_token)),
        )
        .nest("/api/v1/projects/{project}", project_routes())
        .nest("/__emulator", control::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(
            state.clone(),
            auth::require_project_access,
        ))
        .layer(from_fn(request_log::gunzip))
        .layer(from_fn_with_state(state.clone(), faults::inject))
        .layer(from_fn_with_state(state.clone(), request_log::observe))
        .with_state(state)
}

/// A running emulator. Dropping it (or calling [`Emulator::shutdown`]) stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: AppState,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts on `127.0.0.1` with an OS-assigned port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on `addr`; the server runs on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared: AppState = Arc::new(Shared::new(&config));
        let app = router(shared.clone());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, stop_rx));
        Ok(Emulator {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`; the API lives at `{base_url}/api/v1/projects/{project}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base_url())
    }

    /// `{base_url}/api/v1/projects/{project}`.
    pub fn api_url(&self) -> String {
        format!(
            "{}/api/v1/projects/{}",
            self.base_url(),
            self.shared.project
        )
    }

    pub fn project(&self) -> &str {
        &self.shared.project
    }

    pub fn control(&self) -> Control {
        Control {
            shared: self.shared.clone(),
        }
    }

    /// Stops accepting, closes open connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, app.clone(), stop.clone()));
            }
            _ = stop.changed() => break,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let kill = ConnKill(Arc::new(Notify::new()));
    let kill_for_requests = kill.clone();
    let service = tower::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(kill_for_requests.clone());
        app.clone().oneshot(req.map(Body::new))
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    // Dropping the connection future closes the socket, which is how faults drop connections.
    tokio::select! {
        _ = conn => {}
        _ = kill.0.notified() => {}
        _ = stop.changed() => {}
    }
}
