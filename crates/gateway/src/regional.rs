//! The warranty service of every region, as the pages reach it: a device's
//! reads from the nearest region that answers (a replica says so), its writes
//! in its home region, the only one that changes it. Without a region
//! directory, every call goes to the nearest.

use std::collections::HashMap;
use std::sync::Arc;

use aftersales_proto::common::CountryCode;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::regions::{Regions, Routes, first_that_answers};
use tonic::transport::Channel;

use crate::pages::{authorized, by_imei};

type Client = WarrantyServiceClient<Channel>;

#[derive(Debug)]
pub(crate) struct Warranties {
    routes: Routes,
    /// A lazy channel to each region's warranty service, by its address.
    channels: HashMap<String, Channel>,
}

impl Warranties {
    pub fn new(
        nearest_url: &str,
        nearest: Channel,
        regions: Option<Arc<Regions>>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, crate::GatewayError> {
        let routes = Routes::new("warranty", nearest_url, regions);
        let mut channels = HashMap::from([(nearest_url.to_owned(), nearest)]);
        for url in routes.readers() {
            if let std::collections::hash_map::Entry::Vacant(entry) = channels.entry(url) {
                let channel = crate::channel(entry.key(), ca)?;
                entry.insert(channel);
            }
        }
        Ok(Self { routes, channels })
    }

    /// The warranty service at `url`, one of the directory's.
    fn at(&self, url: &str) -> Result<Client, tonic::Status> {
        self.channels
            .get(url)
            .map(|channel| Client::new(channel.clone()))
            .ok_or_else(|| {
                tonic::Status::failed_precondition(format!("{url} is not in the region directory"))
            })
    }

    /// The nearest region's warranty service.
    pub fn nearest(&self) -> Result<Client, tonic::Status> {
        self.at(self.routes.nearest())
    }

    /// The device from the nearest region that has it, and where it came from.
    async fn find(&self, imei: &str, token: &str) -> Result<(wpb::Device, String), tonic::Status> {
        first_that_answers(&self.routes.readers(), |url| async move {
            self.at(&url)?
                .get_device(authorized(
                    wpb::GetDeviceRequest {
                        device_id: Some(by_imei(imei)),
                    },
                    token,
                ))
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// The device from the nearest region that has it, and that region's
    /// client (to ask it more about the same device).
    pub async fn device(
        &self,
        imei: &str,
        token: &str,
    ) -> Result<(wpb::Device, Client), tonic::Status> {
        let (device, url) = self.find(imei, token).await?;
        Ok((device, self.at(&url)?))
    }

    /// The warranty service of the device's home region.
    pub async fn home_of(&self, imei: &str, token: &str) -> Result<Client, tonic::Status> {
        if self.routes.nearest_only() {
            return self.nearest();
        }
        let (device, url) = self.find(imei, token).await?;
        let replica_home = device.replica.map(|r| r.home_region).unwrap_or_default();
        self.at(&self.routes.home_of_device(&url, &replica_home)?)
    }

    /// Where a device bought in `country` is registered.
    pub fn home_of_country(&self, country: Option<&CountryCode>) -> Result<Client, tonic::Status> {
        match country {
            Some(country) => self.at(&self.routes.home_of_country(&country.value)),
            None => self.nearest(),
        }
    }

    /// The customer's devices in every region (each is registered in its
    /// home): the nearest's refusal stops the list; another region that cannot
    /// answer leaves its devices out.
    pub async fn devices_of(
        &self,
        customer: &str,
        token: &str,
    ) -> Result<Vec<wpb::DeviceSummary>, tonic::Status> {
        let readers = self.routes.readers();
        let answers = futures::future::join_all(readers.iter().map(|url| async move {
            self.at(url)?
                .list_devices_by_customer(authorized(
                    wpb::ListDevicesByCustomerRequest {
                        customer_id: customer.to_owned(),
                        page_size: 50,
                        page_token: String::new(),
                    },
                    token,
                ))
                .await
                .map(|listed| listed.into_inner().devices)
        }))
        .await;
        let mut devices = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(listed) => devices.extend(listed),
                Err(status) if i == 0 => return Err(status),
                Err(status) => tracing::warn!(
                    region = %readers[i],
                    code = ?status.code(),
                    "a region's devices left out of the list"
                ),
            }
        }
        Ok(devices)
    }
}
