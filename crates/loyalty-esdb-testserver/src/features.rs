//! The `ServerFeatures` service the client calls first on every new connection.

use tonic::{Request, Response, Status};

use crate::proto::event_store::client::server_features::{
    SupportedMethod, SupportedMethods, server_features_server::ServerFeatures,
};

/// The version this server claims: one that sends caught-up messages to subscriptions.
const SERVER_VERSION: &str = "24.10.0";

#[derive(Debug, Clone, Copy)]
pub(crate) struct FeaturesService;

#[tonic::async_trait]
impl ServerFeatures for FeaturesService {
    async fn get_supported_methods(
        &self,
        _: Request<()>,
    ) -> Result<Response<SupportedMethods>, Status> {
        // Batch append is not offered, so the client never picks it.
        let methods = ["read", "append"]
            .into_iter()
            .map(|name| SupportedMethod {
                method_name: name.to_owned(),
                service_name: "event_store.client.streams.streams".to_owned(),
                features: Vec::new(),
            })
            .collect();
        Ok(Response::new(SupportedMethods {
            methods,
            event_store_server_version: SERVER_VERSION.to_owned(),
        }))
    }
}
